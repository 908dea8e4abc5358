// Prints a google.protobuf.FileDescriptorProto back to .proto source.
//
// Why this exists: no npm package ships buf/validate/validate.proto as a file, but
// @bufbuild/protovalidate carries its complete descriptor (with every option, including the
// `(buf.validate.predefined)` CEL rules). generate.mjs prints that descriptor to a .proto file so
// that buf can compile our imports offline. The printer is deliberately general (proto2, proto3,
// nested types, oneofs, maps, extensions, extension ranges, reserved ranges/names, defaults,
// known and custom options) but not exhaustive: it throws on constructs it does not handle
// (services, groups, editions) instead of printing something subtly wrong. generate.mjs then
// compiles the printed file with buf and compares the resulting descriptor with the original, so
// any printer defect fails the build loudly.

import { getExtension, hasExtension, isFieldSet } from "@bufbuild/protobuf";
import { reflect } from "@bufbuild/protobuf/reflect";
import { toText } from "@bufbuild/protobuf/txtpb";
import {
  EnumOptionsSchema,
  EnumValueOptionsSchema,
  ExtensionRangeOptionsSchema,
  FieldDescriptorProto_Label,
  FieldDescriptorProto_Type,
  FieldDescriptorProtoSchema,
  FieldOptionsSchema,
  FileOptionsSchema,
  MessageOptionsSchema,
  OneofOptionsSchema,
} from "@bufbuild/protobuf/wkt";

/** Proto's max field number; `to max` in an extension or reserved range. */
const MAX_FIELD_NUMBER = 536870911;

/** Proto2 descriptor fields read their default when unset: presence must be checked explicitly. */
const has = (f, name) => isFieldSet(f, FieldDescriptorProtoSchema.field[name]);
const oneofOf = (f) => (has(f, "oneofIndex") && !f.proto3Optional ? f.oneofIndex : undefined);

const scalarNames = {
  [FieldDescriptorProto_Type.DOUBLE]: "double",
  [FieldDescriptorProto_Type.FLOAT]: "float",
  [FieldDescriptorProto_Type.INT64]: "int64",
  [FieldDescriptorProto_Type.UINT64]: "uint64",
  [FieldDescriptorProto_Type.INT32]: "int32",
  [FieldDescriptorProto_Type.FIXED64]: "fixed64",
  [FieldDescriptorProto_Type.FIXED32]: "fixed32",
  [FieldDescriptorProto_Type.BOOL]: "bool",
  [FieldDescriptorProto_Type.STRING]: "string",
  [FieldDescriptorProto_Type.BYTES]: "bytes",
  [FieldDescriptorProto_Type.UINT32]: "uint32",
  [FieldDescriptorProto_Type.SFIXED32]: "sfixed32",
  [FieldDescriptorProto_Type.SFIXED64]: "sfixed64",
  [FieldDescriptorProto_Type.SINT32]: "sint32",
  [FieldDescriptorProto_Type.SINT64]: "sint64",
};

/** protoc's default json_name: lowerCamelCase of the field name. */
export function defaultJsonName(name) {
  let out = "";
  let upper = false;
  for (const ch of name) {
    if (ch === "_") {
      upper = true;
    } else if (upper) {
      out += ch.toUpperCase();
      upper = false;
    } else {
      out += ch;
    }
  }
  return out;
}

/** Quotes a string for .proto / text format: C escapes for control, quote and backslash. */
function quote(s) {
  let out = '"';
  for (const byte of new TextEncoder().encode(s)) {
    if (byte === 0x22) out += '\\"';
    else if (byte === 0x5c) out += "\\\\";
    else if (byte === 0x0a) out += "\\n";
    else if (byte === 0x0d) out += "\\r";
    else if (byte === 0x09) out += "\\t";
    else if (byte < 0x20 || byte >= 0x7f) out += "\\" + byte.toString(8).padStart(3, "0");
    else out += String.fromCharCode(byte);
  }
  return out + '"';
}

/**
 * Creates a printer for one file.
 * @param {import("@bufbuild/protobuf").DescFile} file the file to print
 * @param {import("@bufbuild/protobuf").Registry} registry resolves extensions used in options
 * @param {string} header a comment printed at the top
 */
export function printFile(file, registry, header) {
  const fd = file.proto;
  if (fd.service.length > 0) throw new Error("print-proto: services are not supported");
  const syntax = fd.syntax === "" ? "proto2" : fd.syntax;
  if (syntax !== "proto2" && syntax !== "proto3") {
    throw new Error(`print-proto: syntax "${fd.syntax}" (editions) is not supported`);
  }
  const isProto3 = syntax === "proto3";
  const out = [];
  const emit = (indent, line) => out.push(line === "" ? "" : "  ".repeat(indent) + line);

  for (const line of header.split("\n")) emit(0, `// ${line}`.trimEnd());
  emit(0, "");
  emit(0, `syntax = "${syntax}";`);
  emit(0, "");
  emit(0, `package ${fd.package};`);
  emit(0, "");
  fd.dependency.forEach((dep, i) => {
    const mod = fd.publicDependency.includes(i) ? "public " : fd.weakDependency.includes(i) ? "weak " : "";
    emit(0, `import ${mod}${quote(dep)};`);
  });
  emit(0, "");
  for (const opt of optionEntries(FileOptionsSchema, fd.options, registry)) emit(0, `option ${opt};`);
  emit(0, "");

  for (const ext of groupExtensions(fd.extension)) printExtend(ext, 0);
  for (const e of fd.enumType) printEnum(e, 0);
  for (const m of fd.messageType) printMessage(m, 0);

  // Collapse runs of blank lines.
  const text = out.join("\n").replace(/\n{3,}/g, "\n\n");
  return text.trimEnd() + "\n";

  function printExtend(group, indent) {
    emit(indent, `extend ${group.extendee} {`);
    for (const f of group.fields) printField(f, indent + 1, undefined, true);
    emit(indent, "}");
    emit(indent, "");
  }

  function printEnum(e, indent) {
    emit(indent, `enum ${e.name} {`);
    for (const opt of optionEntries(EnumOptionsSchema, e.options, registry)) emit(indent + 1, `option ${opt};`);
    for (const v of e.value) {
      const opts = optionEntries(EnumValueOptionsSchema, v.options, registry);
      emit(indent + 1, `${v.name} = ${v.number}${bracket(opts, indent + 1)};`);
    }
    printReserved(e.reservedRange, e.reservedName, indent + 1, true);
    emit(indent, "}");
    emit(indent, "");
  }

  function printMessage(m, indent) {
    if (m.options?.mapEntry) return; // printed inline as map<K, V>
    emit(indent, `message ${m.name} {`);
    for (const opt of optionEntries(MessageOptionsSchema, m.options, registry)) emit(indent + 1, `option ${opt};`);
    const printedOneofs = new Set();
    for (const f of m.field) {
      const oneofIndex = oneofOf(f);
      if (oneofIndex === undefined) {
        printField(f, indent + 1, m);
        continue;
      }
      if (printedOneofs.has(oneofIndex)) continue;
      printedOneofs.add(oneofIndex);
      const oneof = m.oneofDecl[oneofIndex];
      emit(indent + 1, `oneof ${oneof.name} {`);
      for (const opt of optionEntries(OneofOptionsSchema, oneof.options, registry)) emit(indent + 2, `option ${opt};`);
      for (const member of m.field) {
        if (oneofOf(member) === oneofIndex) printField(member, indent + 2, m, false, true);
      }
      emit(indent + 1, "}");
    }
    for (const r of m.extensionRange) {
      const opts = optionEntries(ExtensionRangeOptionsSchema, r.options, registry);
      emit(indent + 1, `extensions ${range(r.start, r.end, false)}${bracket(opts, indent + 1)};`);
    }
    printReserved(m.reservedRange, m.reservedName, indent + 1, false);
    for (const ext of groupExtensions(m.extension)) printExtend(ext, indent + 1);
    for (const e of m.enumType) printEnum(e, indent + 1);
    for (const nested of m.nestedType) printMessage(nested, indent + 1);
    emit(indent, "}");
    emit(indent, "");
  }

  function printReserved(ranges, names, indent, enumStyle) {
    if (ranges.length > 0) {
      emit(indent, `reserved ${ranges.map((r) => range(r.start, r.end, enumStyle)).join(", ")};`);
    }
    if (names.length > 0) emit(indent, `reserved ${names.map(quote).join(", ")};`);
  }

  function printField(f, indent, parent, isExtension = false, inOneof = false) {
    if (f.type === FieldDescriptorProto_Type.GROUP) throw new Error("print-proto: groups are not supported");
    let label = "";
    const mapEntry = mapEntryOf(f, parent);
    if (mapEntry) {
      label = "";
    } else if (f.label === FieldDescriptorProto_Label.REPEATED) {
      label = "repeated ";
    } else if (f.label === FieldDescriptorProto_Label.REQUIRED) {
      label = "required ";
    } else if (!inOneof && (!isProto3 || f.proto3Optional)) {
      label = "optional ";
    }
    const type = mapEntry
      ? `map<${typeName(mapEntry.field[0])}, ${typeName(mapEntry.field[1])}>`
      : typeName(f);
    const opts = [];
    if (has(f, "defaultValue")) opts.push(`default = ${defaultLiteral(f)}`);
    if (has(f, "jsonName") && f.jsonName !== defaultJsonName(f.name) && !isExtension) {
      opts.push(`json_name = ${quote(f.jsonName)}`);
    }
    opts.push(...optionEntries(FieldOptionsSchema, f.options, registry));
    emit(indent, `${label}${type} ${f.name} = ${f.number}${bracket(opts, indent)};`);
  }

  function mapEntryOf(f, parent) {
    if (!parent || f.type !== FieldDescriptorProto_Type.MESSAGE || f.label !== FieldDescriptorProto_Label.REPEATED) {
      return undefined;
    }
    const simple = f.typeName.split(".").pop();
    const nested = parent.nestedType.find((n) => n.name === simple && n.options?.mapEntry);
    return nested;
  }

  function typeName(f) {
    if (f.type === FieldDescriptorProto_Type.MESSAGE || f.type === FieldDescriptorProto_Type.ENUM) {
      return f.typeName; // fully qualified with a leading dot: always resolves unambiguously
    }
    const name = scalarNames[f.type];
    if (!name) throw new Error(`print-proto: unknown field type ${f.type}`);
    return name;
  }

  function defaultLiteral(f) {
    switch (f.type) {
      case FieldDescriptorProto_Type.STRING:
        return quote(f.defaultValue);
      case FieldDescriptorProto_Type.BYTES:
        // Descriptor stores bytes defaults C-escaped already.
        return `"${f.defaultValue}"`;
      default:
        return f.defaultValue;
    }
  }
}

function range(start, end, enumStyle) {
  // Message ranges are end-exclusive in descriptors; enum reserved ranges are end-inclusive.
  const last = enumStyle ? end : end - 1;
  if (last === start) return `${start}`;
  if (!enumStyle && last === MAX_FIELD_NUMBER) return `${start} to max`;
  return `${start} to ${last}`;
}

function groupExtensions(fields) {
  const groups = new Map();
  for (const f of fields) {
    const g = groups.get(f.extendee) ?? [];
    g.push(f);
    groups.set(f.extendee, g);
  }
  return [...groups].map(([extendee, fs]) => ({ extendee, fields: fs }));
}

function bracket(opts, indent) {
  if (opts.length === 0) return "";
  const oneLine = ` [${opts.join(", ")}]`;
  if (!oneLine.includes("\n") && oneLine.length < 80) return oneLine;
  const pad = "  ".repeat(indent + 1);
  return ` [\n${opts.map((o) => pad + o.replace(/\n/g, "\n" + pad)).join(",\n")}\n${"  ".repeat(indent)}]`;
}

/**
 * Lists `name = value` entries for every set option of an options message: known fields by name,
 * extensions (stored as unknown fields until read with their descriptor) as `(full.name)`.
 */
function optionEntries(schema, options, registry) {
  if (!options) return [];
  const entries = [];
  const msg = reflect(schema, options);
  for (const field of msg.fields) {
    if (!msg.isSet(field)) continue;
    if (field.fieldKind === "list") {
      for (const v of msg.get(field)) {
        entries.push(`${field.name} = ${valueLiteral(field, field.listKind === "message" ? v.message : v, true)}`);
      }
    } else if (field.fieldKind === "map") {
      throw new Error(`print-proto: map option ${field.name} is not supported`);
    } else {
      entries.push(`${field.name} = ${valueLiteral(field, field.fieldKind === "message" ? msg.get(field).message : msg.get(field))}`);
    }
  }
  const seen = new Set();
  for (const uf of options.$unknown ?? []) {
    if (seen.has(uf.no)) continue;
    seen.add(uf.no);
    const ext = registry.getExtensionFor(schema, uf.no);
    if (!ext) throw new Error(`print-proto: unknown option ${schema.typeName} #${uf.no}`);
    if (!hasExtension(options, ext)) continue;
    const value = getExtension(options, ext);
    const values = ext.fieldKind === "list" ? value : [value];
    for (const v of values) entries.push(`(${ext.typeName}) = ${valueLiteral(ext, v, ext.fieldKind === "list")}`);
  }
  return entries;
}

function valueLiteral(field, value, listItem = false) {
  const kind = listItem ? field.listKind : field.fieldKind;
  switch (kind) {
    case "message": {
      const body = toText(field.message, value).trimEnd();
      if (body === "") return "{}";
      return `{\n${body
        .split("\n")
        .map((l) => "  " + l)
        .join("\n")}\n}`;
    }
    case "enum": {
      const v = field.enum.values.find((x) => x.number === value);
      if (!v) throw new Error(`print-proto: unknown enum value ${value} for ${field.name}`);
      return v.name;
    }
    case "scalar":
      if (typeof value === "string") return quote(value);
      if (value instanceof Uint8Array) throw new Error("print-proto: bytes options are not supported");
      return String(value);
    default:
      throw new Error(`print-proto: unsupported option kind ${kind}`);
  }
}
