import * as grpc from '@grpc/grpc-js'
import { loadSync } from '@grpc/proto-loader'
import { fromBinary } from '@bufbuild/protobuf'
import { FileDescriptorProtoSchema, type FileDescriptorProto } from '@bufbuild/protobuf/wkt'
import { reflectionProtosDir } from '../../src/status-server.js'

/** One answer of grpc.reflection.v1 ServerReflectionInfo, as proto-loader decodes it. */
export interface ReflectionResponse {
  fileDescriptorResponse?: { fileDescriptorProto: Buffer[] }
  listServicesResponse?: { service: Array<{ name: string }> }
  errorResponse?: { errorCode: number; errorMessage: string }
}

/** A reflection client as stock tools are: stubs from the reference reflection.proto, one request per stream. */
export function reflectionClient(address: string): { ask(req: Record<string, unknown>): Promise<ReflectionResponse>; close(): void } {
  const def = loadSync(['grpc/reflection/v1/reflection.proto'], { includeDirs: [reflectionProtosDir()], keepCase: false })
  const Reflection = (grpc.loadPackageDefinition(def) as any).grpc.reflection.v1.ServerReflection
  const client = new Reflection(address, grpc.credentials.createInsecure())
  return {
    ask: (req) =>
      new Promise((resolvePromise, reject) => {
        const call = client.serverReflectionInfo()
        call.on('data', (msg: ReflectionResponse) => {
          resolvePromise(msg)
          call.end()
        })
        call.on('error', reject)
        call.write(req)
      }),
    close: () => client.close()
  }
}

/** The FileDescriptorProtos of a file_* answer. */
export const decodeFiles = (res: ReflectionResponse): FileDescriptorProto[] =>
  (res.fileDescriptorResponse?.fileDescriptorProto ?? []).map((b) => fromBinary(FileDescriptorProtoSchema, b))
