#!/usr/bin/env node
// Generates packages/proto/src/gen from proto/, offline.
//
//   node scripts/generate.mjs                    copy third-party protos, then `buf generate`
//   node scripts/generate.mjs --third-party-only only (re)create proto/third_party/
//
// Steps:
//  1. Recreate proto/third_party/ (gitignored) from npm packages, never from the network:
//     google/api + google/rpc from google-proto-files, grpc/health/v1 from grpc-health-check,
//     grpc/reflection/{v1,v1alpha} from @grpc/reflection.
//  2. Print buf/validate/validate.proto from the descriptor embedded in @bufbuild/protovalidate (no
//     npm package ships the .proto file), compile it with buf and check that the compiled
//     descriptor is identical to the embedded one — so our rules use exactly the field and
//     extension numbers the protovalidate runtime reads.
//  3. `buf generate` with the local protoc-gen-es from node_modules (no remote plugins, no deps).
//
// Paths are resolved from this file, so the script works from any working directory.

import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, copyFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { createRegistry, fromBinary, toJson } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { file_buf_validate_validate } from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";
import { defaultJsonName, printFile } from "./print-proto.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const pkgDir = join(here, "..");
const repoRoot = join(pkgDir, "..", "..");
const protoDir = join(repoRoot, "proto");
const thirdPartyDir = join(protoDir, "third_party");
const genDir = join(pkgDir, "src", "gen");
const thirdPartyOnly = process.argv.includes("--third-party-only");

/** Finds an installed package's directory the way Node resolves bare specifiers (walking up). */
function packageDir(name, from = pkgDir) {
  for (let dir = from; ; dir = dirname(dir)) {
    const candidate = join(dir, "node_modules", name);
    if (existsSync(join(candidate, "package.json"))) return candidate;
    if (dirname(dir) === dir) throw new Error(`generate: npm package ${name} is not installed (run npm install)`);
  }
}

function packageVersion(dir) {
  return JSON.parse(readFileSync(join(dir, "package.json"), "utf8")).version;
}

/** [npm package, path inside the package, destination under proto/third_party/] */
const thirdPartyFiles = [
  ["google-proto-files", "google/api/field_behavior.proto", "google/api/field_behavior.proto"],
  ["google-proto-files", "google/api/resource.proto", "google/api/resource.proto"],
  ["google-proto-files", "google/rpc/status.proto", "google/rpc/status.proto"],
  ["google-proto-files", "google/rpc/code.proto", "google/rpc/code.proto"],
  ["google-proto-files", "google/rpc/error_details.proto", "google/rpc/error_details.proto"],
  ["grpc-health-check", "proto/health/v1/health.proto", "grpc/health/v1/health.proto"],
  ["@grpc/reflection", "build/proto/grpc/reflection/v1/reflection.proto", "grpc/reflection/v1/reflection.proto"],
  [
    "@grpc/reflection",
    "build/proto/grpc/reflection/v1alpha/reflection.proto",
    "grpc/reflection/v1alpha/reflection.proto",
  ],
];

const bufBin = join(packageDir("@bufbuild/buf"), "bin", "buf");

function buf(args, options = {}) {
  return execFileSync(process.execPath, [bufBin, ...args], { cwd: repoRoot, stdio: "inherit", ...options });
}

function copyThirdParty() {
  rmSync(thirdPartyDir, { recursive: true, force: true });
  const sources = [];
  for (const [pkg, from, to] of thirdPartyFiles) {
    const dir = packageDir(pkg);
    const dest = join(thirdPartyDir, to);
    mkdirSync(dirname(dest), { recursive: true });
    copyFileSync(join(dir, from), dest);
    sources.push(`${to} <- ${pkg}@${packageVersion(dir)}`);
  }
  return sources;
}

function writeValidateProto() {
  const version = packageVersion(packageDir("@bufbuild/protovalidate"));
  const registry = createRegistry(file_buf_validate_validate);
  const header = [
    `Printed by packages/proto/scripts/generate.mjs from the descriptor embedded in`,
    `@bufbuild/protovalidate@${version} (gen/buf/validate/validate_pb.js). Do not edit.`,
    `Comments are not part of that descriptor; see https://github.com/bufbuild/protovalidate for the`,
    `documented original. Copyright 2023-2026 Buf Technologies, Inc., Apache License 2.0.`,
  ].join("\n");
  const text = printFile(file_buf_validate_validate, registry, header);
  const dest = join(thirdPartyDir, "buf", "validate", "validate.proto");
  mkdirSync(dirname(dest), { recursive: true });
  writeFileSync(dest, text);
  return `buf/validate/validate.proto <- printed from @bufbuild/protovalidate@${version}`;
}

/** Compiles the printed validate.proto and compares it, option by option, with the embedded descriptor. */
function verifyValidateProto() {
  const tmp = mkdtempSync(join(tmpdir(), "promptcraft-validate-"));
  try {
    const image = join(tmp, "image.binpb");
    buf([
      "build",
      relative(repoRoot, protoDir),
      "--path",
      relative(repoRoot, join(thirdPartyDir, "buf", "validate", "validate.proto")),
      "--exclude-source-info",
      "-o",
      image,
    ]);
    const set = fromBinary(FileDescriptorSetSchema, readFileSync(image));
    const compiled = set.file.find((f) => f.name === "buf/validate/validate.proto");
    if (!compiled) throw new Error("generate: compiled image lacks buf/validate/validate.proto");
    const registry = createRegistry(file_buf_validate_validate);
    const normalize = (fd) => {
      const json = toJson(FileDescriptorProtoSchema, fd, { registry });
      // protoc-gen-es drops json_name when it equals protoc's default; buf always sets it.
      const strip = (node) => {
        if (Array.isArray(node)) return node.forEach(strip);
        if (node && typeof node === "object") {
          if (typeof node.name === "string" && node.jsonName === defaultJsonName(node.name)) delete node.jsonName;
          Object.values(node).forEach(strip);
        }
      };
      strip(json);
      return JSON.stringify(json, null, 1);
    };
    const expected = normalize(file_buf_validate_validate.proto);
    const actual = normalize(compiled);
    if (expected !== actual) {
      writeFileSync(join(tmpdir(), "validate.expected.json"), expected);
      writeFileSync(join(tmpdir(), "validate.actual.json"), actual);
      throw new Error(
        `generate: printed buf/validate/validate.proto does not compile to the embedded descriptor ` +
          `(diff ${join(tmpdir(), "validate.expected.json")} ${join(tmpdir(), "validate.actual.json")})`,
      );
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

const sources = copyThirdParty();
sources.push(writeValidateProto());
verifyValidateProto();
console.log(`proto/third_party/ ready:\n  ${sources.join("\n  ")}`);

if (!thirdPartyOnly) {
  rmSync(genDir, { recursive: true, force: true });
  const pluginBin = join(packageDir("@bufbuild/protoc-gen-es"), "bin", "protoc-gen-es");
  // buf.gen.yaml names the plugin by a path relative to the repo root; check it is the one we found.
  const expectedPlugin = "node_modules/@bufbuild/protoc-gen-es/bin/protoc-gen-es";
  if (relative(repoRoot, pluginBin) !== expectedPlugin) {
    throw new Error(`generate: protoc-gen-es expected at ${expectedPlugin}, found ${pluginBin}`);
  }
  buf(["generate", "--template", "proto/buf.gen.yaml", "proto"]);
  console.log(`generated ${relative(repoRoot, genDir)}/`);
}
