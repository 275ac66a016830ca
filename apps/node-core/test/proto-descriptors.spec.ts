import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { FieldDescriptorProto_Label, FieldDescriptorProto_Type, file_google_protobuf_timestamp } from '@bufbuild/protobuf/wkt'
import { describeProtoFiles, jsonName } from '../src/proto-descriptors.js'

/** Two small .proto files on disk (real files, no server): what protoc would make of them is checked field by field. */
let dir: string
const write = (name: string, text: string): string => {
  const path = join(dir, name)
  mkdirSync(dirname(path), { recursive: true })
  writeFileSync(path, text)
  return path
}
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'split-proto-descriptors-'))
  write(
    'acme/v1/common.proto',
    `syntax = "proto3";
package acme.v1;
import "google/protobuf/timestamp.proto";
message Thing {
  string thing_id = 1;
  google.protobuf.Timestamp seen_at = 2;
  map<string, int32> section_versions = 3;
  optional string nick_name = 4;
  oneof choice {
    string a = 5;
    int32 b = 6;
  }
  reserved 9 to 11;
}
`
  )
  write(
    'acme/v1/things.proto',
    `syntax = "proto3";
package acme.v1;
import "acme/v1/common.proto";
service Things {
  rpc Watch(Thing) returns (stream Thing);
}
`
  )
})
afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe('describeProtoFiles (descriptors as protoc would write them)', () => {
  it('describes each real file under its import name, importing what it uses, dependencies first (well-known types as protoc’s own)', () => {
    const files = describeProtoFiles({
      includeDirs: [dir],
      files: [{ name: 'acme/v1/things.proto', path: join(dir, 'acme/v1/things.proto') }]
    })
    expect(files.map((f) => f.name)).toEqual(['google/protobuf/timestamp.proto', 'acme/v1/common.proto', 'acme/v1/things.proto'])
    expect(files[0]).toBe(file_google_protobuf_timestamp.proto)
    expect(files[1]!.dependency).toEqual(['google/protobuf/timestamp.proto'])
    expect(files[2]!.dependency).toEqual(['acme/v1/common.proto'])
    const watch = files[2]!.service[0]!.method[0]!
    expect([watch.name, watch.inputType, watch.outputType, watch.serverStreaming, watch.clientStreaming]).toEqual([
      'Watch',
      '.acme.v1.Thing',
      '.acme.v1.Thing',
      true,
      false
    ])
  })

  it('keeps the contract’s snake_case names with protoc’s json names, map entries, oneof order and exclusive reserved ends', () => {
    const [, common] = describeProtoFiles({
      includeDirs: [dir],
      files: [{ name: 'acme/v1/common.proto', path: join(dir, 'acme/v1/common.proto') }]
    })
    const thing = common!.messageType[0]!
    expect(thing.field.map((f) => [f.name, f.jsonName])).toEqual([
      ['thing_id', 'thingId'],
      ['seen_at', 'seenAt'],
      ['section_versions', 'sectionVersions'],
      ['nick_name', 'nickName'],
      ['a', 'a'],
      ['b', 'b']
    ])
    const seenAt = thing.field[1]!
    expect([seenAt.type, seenAt.typeName]).toEqual([FieldDescriptorProto_Type.MESSAGE, '.google.protobuf.Timestamp'])
    const map = thing.field[2]!
    expect([map.label, map.typeName]).toEqual([FieldDescriptorProto_Label.REPEATED, '.acme.v1.Thing.SectionVersionsEntry'])
    expect(thing.nestedType.map((n) => [n.name, n.options?.mapEntry])).toEqual([['SectionVersionsEntry', true]])
    // Declared oneofs first, then the synthetic one of the proto3 `optional` field.
    expect(thing.oneofDecl.map((o) => o.name)).toEqual(['choice', '_nick_name'])
    expect(thing.field[3]!.proto3Optional).toBe(true)
    expect(thing.reservedRange.map((r) => [r.start, r.end])).toEqual([[9, 12]])
  })
})

describe('jsonName', () => {
  it('is protoc’s lowerCamelCase of a field name', () => {
    expect(jsonName('phase_since')).toBe('phaseSince')
    expect(jsonName('ipv6_address_2')).toBe('ipv6Address2')
    expect(jsonName('plain')).toBe('plain')
  })
})
