import { create, createFileRegistry, fromBinary, toBinary, type FileRegistry } from '@bufbuild/protobuf'
import {
  FileDescriptorProtoSchema,
  FileDescriptorSetSchema,
  type DescriptorProto,
  type EnumDescriptorProto,
  type FileDescriptorProto
} from '@bufbuild/protobuf/wkt'
import type * as grpc from '@grpc/grpc-js'
import { NotFoundError } from '@mycelium/core-interfaces'
import { describeProtoFiles, type ProtoFilesInit } from './proto-descriptors.js'

export type { ProtoFileSource } from './proto-descriptors.js'

/**
 * Server reflection as stock clients (grpcurl, grpcio's reflection client,
 * a strict descriptor pool) expect it, answering from the descriptors
 * proto-descriptors.ts builds — what protoc would have produced. They are
 * loaded into a strict @bufbuild/protobuf registry before anything is
 * served, so a descriptor a pool would refuse fails at load, not in the
 * operator's client.
 *
 * Loaded only on the first reflection call (status-server.ts).
 */

export interface ReflectionInit extends ProtoFilesInit {
  /** Fully-qualified names of the services the server serves: what list_services answers. */
  services: string[]
}

/** What server reflection answers, indexed once from the described files. */
export class ReflectionIndex {
  /** A strict registry of every file: building it checks what a client's pool will check. */
  readonly registry: FileRegistry
  private readonly files = new Map<string, FileDescriptorProto>()
  private readonly encoded = new Map<string, Uint8Array>()
  /** Fully-qualified symbol (service, method, message, field, enum, enum value) → its file. */
  private readonly symbols = new Map<string, string>()

  constructor(
    files: FileDescriptorProto[],
    readonly services: string[]
  ) {
    this.registry = createFileRegistry(create(FileDescriptorSetSchema, { file: files }))
    for (const f of files) {
      this.files.set(f.name, f)
      this.encoded.set(f.name, toBinary(FileDescriptorProtoSchema, f))
      this.indexFile(f)
    }
    const missing = services.filter((s) => !this.symbols.has(s))
    if (missing.length > 0) throw new NotFoundError(`served services without a descriptor: ${missing.join(', ')}`)
  }

  private indexFile(f: FileDescriptorProto): void {
    const add = (name: string): void => void this.symbols.set(name, f.name)
    const scope = f.package === '' ? '' : `${f.package}.`
    const enums = (prefix: string, list: EnumDescriptorProto[]): void => {
      for (const e of list) {
        add(`${prefix}${e.name}`)
        // Enum values are siblings of their enum (C++ scoping), as protoc names them.
        for (const v of e.value) add(`${prefix}${v.name}`)
      }
    }
    const messages = (prefix: string, list: DescriptorProto[]): void => {
      for (const m of list) {
        const name = `${prefix}${m.name}`
        add(name)
        for (const field of m.field) add(`${name}.${field.name}`)
        messages(`${name}.`, m.nestedType)
        enums(`${name}.`, m.enumType)
      }
    }
    messages(scope, f.messageType)
    enums(scope, f.enumType)
    for (const s of f.service) {
      add(`${scope}${s.name}`)
      for (const m of s.method) add(`${scope}${s.name}.${m.name}`)
    }
  }

  listServices(): string[] {
    return [...this.services]
  }

  /** The file and every file it imports, transitively (the file first). */
  fileByFilename(name: string): Uint8Array[] {
    if (!this.files.has(name)) throw new NotFoundError(`file not found: ${name}`)
    const order: string[] = []
    const visit = (n: string): void => {
      if (order.includes(n)) return
      order.push(n)
      for (const d of this.files.get(n)?.dependency ?? []) visit(d)
    }
    visit(name)
    return order.map((n) => this.encoded.get(n)!)
  }

  fileContainingSymbol(symbol: string): Uint8Array[] {
    const file = this.symbols.get(symbol.replace(/^\./, ''))
    if (file == null) throw new NotFoundError(`symbol not found: ${symbol}`)
    return this.fileByFilename(file)
  }

  /** proto3 has no extensions: a known message has none, anything else is unknown. */
  extensionNumbersOf(typeName: string): number[] {
    if (this.registry.getMessage(typeName.replace(/^\./, '')) == null) throw new NotFoundError(`message not found: ${typeName}`)
    return []
  }
}

/** grpc-js method definitions and handlers of ServerReflectionInfo (v1 and v1alpha), by path. */
export type ReflectionMethods = Map<
  string,
  { method: grpc.MethodDefinition<unknown, unknown>; handler: grpc.handleBidiStreamingCall<unknown, unknown> }
>

interface ReflectionRequest {
  host: string
  messageRequest: { case: string | undefined; value?: unknown }
}

const NOT_FOUND = 5
const INVALID_ARGUMENT = 3
const UNIMPLEMENTED = 12

function answer(index: ReflectionIndex, req: ReflectionRequest): { case: string; value: unknown } {
  try {
    const r = req.messageRequest
    switch (r.case) {
      case 'listServices':
        return { case: 'listServicesResponse', value: { service: index.listServices().map((name) => ({ name })) } }
      case 'fileByFilename':
        return { case: 'fileDescriptorResponse', value: { fileDescriptorProto: index.fileByFilename(r.value as string) } }
      case 'fileContainingSymbol':
        return { case: 'fileDescriptorResponse', value: { fileDescriptorProto: index.fileContainingSymbol(r.value as string) } }
      case 'fileContainingExtension': {
        const ext = r.value as { containingType: string; extensionNumber: number }
        index.extensionNumbersOf(ext.containingType)
        throw new NotFoundError(`no extension ${ext.extensionNumber} of ${ext.containingType}`)
      }
      case 'allExtensionNumbersOfType':
        return {
          case: 'allExtensionNumbersResponse',
          value: { baseTypeName: r.value as string, extensionNumber: index.extensionNumbersOf(r.value as string) }
        }
      default:
        return { case: 'errorResponse', value: { errorCode: UNIMPLEMENTED, errorMessage: `unsupported request ${String(r.case)}` } }
    }
  } catch (err) {
    const e = err as Error
    return {
      case: 'errorResponse',
      value: { errorCode: e.name === NotFoundError.NAME ? NOT_FOUND : INVALID_ARGUMENT, errorMessage: e.message }
    }
  }
}

/** ServerReflectionInfo for both published versions, answering from `index`. */
export function reflectionMethods(index: ReflectionIndex): ReflectionMethods {
  const methods: ReflectionMethods = new Map()
  for (const version of ['v1', 'v1alpha']) {
    const request = index.registry.getMessage(`grpc.reflection.${version}.ServerReflectionRequest`)
    const response = index.registry.getMessage(`grpc.reflection.${version}.ServerReflectionResponse`)
    if (request == null || response == null) throw new NotFoundError(`grpc.reflection.${version} is not described`)
    const path = `/grpc.reflection.${version}.ServerReflection/ServerReflectionInfo`
    methods.set(path, {
      method: {
        path,
        requestStream: true,
        responseStream: true,
        requestSerialize: (m) => Buffer.from(toBinary(request, m as never)),
        requestDeserialize: (b) => fromBinary(request, b),
        responseSerialize: (m) => Buffer.from(toBinary(response, m as never)),
        responseDeserialize: (b) => fromBinary(response, b)
      },
      handler: (call) => {
        call.on('data', (req: ReflectionRequest) => {
          call.write(create(response, { validHost: req.host, originalRequest: req, messageResponse: answer(index, req) } as never))
        })
        call.on('end', () => call.end())
      }
    })
  }
  return methods
}

/** Describes the files and builds the reflection service for the given served services. */
export function loadReflection(init: ReflectionInit): ReflectionMethods {
  return reflectionMethods(new ReflectionIndex(describeProtoFiles(init), init.services))
}
