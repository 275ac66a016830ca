import { existsSync } from 'node:fs'
import { relative, resolve as resolvePath, sep } from 'node:path'
import * as protobuf from 'protobufjs'
import { create } from '@bufbuild/protobuf'
import {
  FieldDescriptorProto_Label,
  FieldDescriptorProto_Type,
  DescriptorProtoSchema,
  EnumDescriptorProtoSchema,
  FieldDescriptorProtoSchema,
  FileDescriptorProtoSchema,
  ServiceDescriptorProtoSchema,
  file_google_protobuf_any,
  file_google_protobuf_duration,
  file_google_protobuf_empty,
  file_google_protobuf_field_mask,
  file_google_protobuf_struct,
  file_google_protobuf_timestamp,
  file_google_protobuf_wrappers,
  type DescriptorProto,
  type EnumDescriptorProto,
  type FieldDescriptorProto,
  type FileDescriptorProto,
  type ServiceDescriptorProto
} from '@bufbuild/protobuf/wkt'
import { InvalidInputError } from '@mycelium/core-interfaces'

/**
 * The descriptors server reflection serves (reflection.ts), as protoc would
 * have produced them: one FileDescriptorProto per real .proto file, under its
 * real name (`mycelium/core/v1/node_status.proto`), importing the files it
 * uses (`google/protobuf/timestamp.proto` …), with the contract's snake_case
 * names and fully-qualified type names. protobufjs parses the shipped .proto
 * files (keepCase); the descriptors are built here per file (proto-loader and
 * protobufjs's own descriptor export merge a package into one invented file
 * and drop imports); the well-known types come from @bufbuild/protobuf's
 * copies of protoc's own descriptors. Apart from the service that indexes and
 * answers from them, so building them is one job with one input: files.
 */

/** A .proto file on disk and the name it has for clients (its import path). */
export interface ProtoFileSource {
  /** Canonical name, e.g. "mycelium/core/v1/node_status.proto". */
  name: string
  /** Where it is on disk. */
  path: string
}

/** The files to describe and where their imports are found. */
export interface ProtoFilesInit {
  /** Root(s) of imports ("mycelium/core/v1/common.proto" resolves under one of them). */
  includeDirs: string[]
  /** The files to describe (their imports follow). */
  files: ProtoFileSource[]
}

/** protoc's well-known types, by file name: served as protoc wrote them. */
const WELL_KNOWN: Record<string, FileDescriptorProto> = Object.fromEntries(
  [
    file_google_protobuf_any,
    file_google_protobuf_duration,
    file_google_protobuf_empty,
    file_google_protobuf_field_mask,
    file_google_protobuf_struct,
    file_google_protobuf_timestamp,
    file_google_protobuf_wrappers
  ].map((f) => [f.proto.name, f.proto])
)

const SCALARS: Record<string, FieldDescriptorProto_Type> = {
  double: FieldDescriptorProto_Type.DOUBLE,
  float: FieldDescriptorProto_Type.FLOAT,
  int64: FieldDescriptorProto_Type.INT64,
  uint64: FieldDescriptorProto_Type.UINT64,
  int32: FieldDescriptorProto_Type.INT32,
  fixed64: FieldDescriptorProto_Type.FIXED64,
  fixed32: FieldDescriptorProto_Type.FIXED32,
  bool: FieldDescriptorProto_Type.BOOL,
  string: FieldDescriptorProto_Type.STRING,
  bytes: FieldDescriptorProto_Type.BYTES,
  uint32: FieldDescriptorProto_Type.UINT32,
  sfixed32: FieldDescriptorProto_Type.SFIXED32,
  sfixed64: FieldDescriptorProto_Type.SFIXED64,
  sint32: FieldDescriptorProto_Type.SINT32,
  sint64: FieldDescriptorProto_Type.SINT64
}

/** protoc's json_name: "phase_since" → "phaseSince". */
export function jsonName(name: string): string {
  return name.replace(/_+([a-z0-9]?)/gi, (_m, c: string) => c.toUpperCase())
}

/** protoc's map entry name: "section_versions" → "SectionVersionsEntry". */
function mapEntryName(name: string): string {
  const camel = jsonName(name)
  return `${camel.charAt(0).toUpperCase()}${camel.slice(1)}Entry`
}

/** Builds the descriptors of the given files and of everything they import, dependencies first. */
export function describeProtoFiles(init: ProtoFilesInit): FileDescriptorProto[] {
  const root = new protobuf.Root()
  const nameOf = new Map<string, string>(init.files.map((f) => [resolvePath(f.path), f.name]))
  root.resolvePath = (_origin, target) => {
    if (nameOf.has(resolvePath(target))) return resolvePath(target)
    for (const dir of init.includeDirs) {
      const candidate = resolvePath(dir, target)
      if (!relative(dir, candidate).startsWith('..') && existsSync(candidate)) {
        nameOf.set(candidate, target.split(sep).join('/'))
        return candidate
      }
    }
    return target
  }
  root.loadSync(
    init.files.map((f) => f.path),
    { keepCase: true }
  )
  root.resolveAll()

  const files = new Map<string, FileDescriptorProto>()
  /** Each described file's imports, found from the types it uses. */
  const imports = new Map<string, Set<string>>()
  const wellKnownByType = new Map<string, string>()
  for (const [name, proto] of Object.entries(WELL_KNOWN)) {
    for (const m of proto.messageType) wellKnownByType.set(`.${proto.package}.${m.name}`, name)
    for (const e of proto.enumType) wellKnownByType.set(`.${proto.package}.${e.name}`, name)
  }

  const fileOf = (obj: protobuf.ReflectionObject): string => {
    let top: protobuf.ReflectionObject = obj
    while (top.parent != null && !(top.parent instanceof protobuf.Root) && top.parent.constructor !== protobuf.Namespace) top = top.parent
    const known = wellKnownByType.get(top.fullName)
    if (known != null) return known
    const name = top.filename != null ? nameOf.get(resolvePath(top.filename)) : undefined
    if (name == null)
      throw new InvalidInputError(`no file known for ${obj.fullName} (${top.filename ?? 'no file name'})`, 'server reflection')
    return name
  }
  const fileFor = (name: string, pkg: string): FileDescriptorProto => {
    let file = files.get(name)
    if (file == null) {
      file = create(FileDescriptorProtoSchema, { name, package: pkg, syntax: 'proto3' })
      files.set(name, file)
      imports.set(name, new Set())
    }
    return file
  }
  const uses = (from: string, type: protobuf.ReflectionObject): string => {
    const target = fileOf(type)
    if (target !== from) imports.get(from)?.add(target)
    return type.fullName
  }

  const field = (f: protobuf.Field, owner: protobuf.Type, file: string, oneofIndex: Map<protobuf.OneOf, number>): FieldDescriptorProto => {
    const resolved = f.resolvedType
    const isMap = f instanceof protobuf.MapField
    const type = isMap
      ? FieldDescriptorProto_Type.MESSAGE
      : resolved instanceof protobuf.Enum
        ? FieldDescriptorProto_Type.ENUM
        : resolved instanceof protobuf.Type
          ? FieldDescriptorProto_Type.MESSAGE
          : SCALARS[f.type]
    if (type == null) throw new InvalidInputError(`unknown type "${f.type}" of ${f.fullName}`, 'server reflection')
    const proto3Optional = f.options?.proto3_optional === true
    return create(FieldDescriptorProtoSchema, {
      name: f.name,
      number: f.id,
      label: isMap || f.repeated ? FieldDescriptorProto_Label.REPEATED : FieldDescriptorProto_Label.OPTIONAL,
      type,
      ...(isMap ? { typeName: `${owner.fullName}.${mapEntryName(f.name)}` } : resolved != null ? { typeName: uses(file, resolved) } : {}),
      jsonName: jsonName(f.name),
      ...(f.partOf != null ? { oneofIndex: oneofIndex.get(f.partOf)! } : {}),
      ...(proto3Optional ? { proto3Optional: true } : {}),
      ...(f.options?.deprecated === true ? { options: { deprecated: true } } : {})
    })
  }

  const enumType = (e: protobuf.Enum): EnumDescriptorProto =>
    create(EnumDescriptorProtoSchema, {
      name: e.name,
      value: Object.entries(e.values).map(([name, number]) => ({ name, number })),
      ...(e.options?.allow_alias === true ? { options: { allowAlias: true } } : {}),
      reservedRange: (e.reserved ?? []).filter((r): r is number[] => Array.isArray(r)).map(([start, end]) => ({ start, end })),
      reservedName: (e.reserved ?? []).filter((r): r is string => typeof r === 'string')
    })

  const message = (t: protobuf.Type, file: string): DescriptorProto => {
    // protoc's order: declared oneofs, then the synthetic ones of proto3 `optional` fields (pools check it).
    const oneofs = [...t.oneofsArray.filter((o) => !isSynthetic(o)), ...t.oneofsArray.filter((o) => isSynthetic(o))]
    const oneofIndex = new Map(oneofs.map((o, i) => [o, i]))
    const nested: DescriptorProto[] = []
    const enums: EnumDescriptorProto[] = []
    for (const f of t.fieldsArray) {
      if (f instanceof protobuf.MapField) {
        const value = f.resolvedType
        nested.push(
          create(DescriptorProtoSchema, {
            name: mapEntryName(f.name),
            field: [
              { name: 'key', number: 1, label: FieldDescriptorProto_Label.OPTIONAL, type: SCALARS[f.keyType]!, jsonName: 'key' },
              {
                name: 'value',
                number: 2,
                label: FieldDescriptorProto_Label.OPTIONAL,
                type:
                  value instanceof protobuf.Enum
                    ? FieldDescriptorProto_Type.ENUM
                    : value instanceof protobuf.Type
                      ? FieldDescriptorProto_Type.MESSAGE
                      : SCALARS[f.type]!,
                ...(value != null ? { typeName: uses(file, value) } : {}),
                jsonName: 'value'
              }
            ],
            options: { mapEntry: true }
          })
        )
      }
    }
    for (const n of t.nestedArray) {
      if (n instanceof protobuf.Type) nested.push(message(n, file))
      else if (n instanceof protobuf.Enum) enums.push(enumType(n))
    }
    return create(DescriptorProtoSchema, {
      name: t.name,
      field: t.fieldsArray.map((f) => field(f, t, file, oneofIndex)),
      nestedType: nested,
      enumType: enums,
      oneofDecl: oneofs.map((o) => ({ name: o.name })),
      // protobufjs keeps inclusive ends; a message's reserved range ends exclusively.
      reservedRange: (t.reserved ?? []).filter((r): r is number[] => Array.isArray(r)).map(([start, end]) => ({ start, end: end! + 1 })),
      reservedName: (t.reserved ?? []).filter((r): r is string => typeof r === 'string')
    })
  }

  const service = (s: protobuf.Service, file: string): ServiceDescriptorProto =>
    create(ServiceDescriptorProtoSchema, {
      name: s.name,
      method: s.methodsArray.map((m) => {
        m.resolve()
        return {
          name: m.name,
          inputType: uses(file, m.resolvedRequestType!),
          outputType: uses(file, m.resolvedResponseType!),
          ...(m.requestStream === true ? { clientStreaming: true } : {}),
          ...(m.responseStream === true ? { serverStreaming: true } : {})
        }
      })
    })

  const walk = (ns: protobuf.NamespaceBase): void => {
    for (const n of ns.nestedArray) {
      if (n instanceof protobuf.Type || n instanceof protobuf.Enum || n instanceof protobuf.Service) {
        const name = fileOf(n)
        if (WELL_KNOWN[name] != null) continue
        const file = fileFor(name, ns.fullName.replace(/^\./, ''))
        if (n instanceof protobuf.Type) file.messageType.push(message(n, name))
        else if (n instanceof protobuf.Enum) file.enumType.push(enumType(n))
        else file.service.push(service(n, name))
      } else if (n instanceof protobuf.Namespace) walk(n)
    }
  }
  walk(root)

  // Dependencies first (what a pool needs to add them one by one).
  const ordered: FileDescriptorProto[] = []
  const seen = new Set<string>()
  const visit = (name: string): void => {
    if (seen.has(name)) return
    seen.add(name)
    const known = WELL_KNOWN[name]
    if (known != null) {
      ordered.push(known)
      return
    }
    const file = files.get(name)!
    file.dependency = [...imports.get(name)!].sort()
    for (const d of file.dependency) visit(d)
    ordered.push(file)
  }
  for (const name of [...files.keys()].sort()) visit(name)
  return ordered
}

const isSynthetic = (o: protobuf.OneOf): boolean =>
  o.fieldsArray.length === 1 && o.fieldsArray[0]!.options?.proto3_optional === true && o.name === `_${o.fieldsArray[0]!.name}`
