#!/usr/bin/env node
// `npm run breaking:proto`: checks the working tree's protos for breaking changes against a base
// branch (default `main`; override with BUF_BREAKING_BASE=<git ref> or the first argument).
//
// buf compares two images (compiled FileDescriptorSets) rather than `--against .git`, because the
// base needs its own generate step: proto/third_party/ is not committed, it is recreated from npm
// packages by packages/proto/scripts/generate.mjs. So:
//   1. check out the base ref in a temporary git worktree (node_modules symlinked from here),
//   2. run the base's generate step (third-party protos only) and `buf build` its image,
//   3. do the same for the working tree,
//   4. `buf breaking <current image> --against <base image>` with the FILE rules of proto/buf.yaml,
//      on our files only (third-party protos are imports in both images and are not checked).
// If the base ref has no protos of ours yet, there is nothing to break: it says so and exits 0.

import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), "..");
const baseRef = process.argv[2] ?? process.env.BUF_BREAKING_BASE ?? "main";
const bufBin = join(repoRoot, "node_modules", "@bufbuild", "buf", "bin", "buf");
const ourProtoDir = "proto/promptcraft";

function git(args, options = {}) {
  return execFileSync("git", args, { cwd: repoRoot, encoding: "utf8", ...options }).trim();
}

function run(command, args, cwd) {
  const result = spawnSync(command, args, { cwd, stdio: "inherit" });
  if (result.status !== 0) {
    throw new Error(`${command} ${args.join(" ")} failed in ${cwd} (exit ${result.status ?? result.signal})`);
  }
}

/** Recreates proto/third_party/ in a checkout, with whatever generate step that checkout has. */
function prepareThirdParty(root) {
  const script = join(root, "packages", "proto", "scripts", "generate.mjs");
  if (!existsSync(script)) return;
  run(process.execPath, [script, "--third-party-only"], root);
}

/** Builds the image of a checkout's protos; our files are the targets, the rest are imports. */
function buildImage(root, output) {
  const targets = existsSync(join(root, ourProtoDir)) ? ["--path", ourProtoDir] : [];
  run(process.execPath, [bufBin, "build", "proto", ...targets, "-o", output], root);
}

function resolveBase() {
  for (const ref of [baseRef, `origin/${baseRef}`]) {
    try {
      return { ref, commit: git(["rev-parse", "--verify", "--quiet", `${ref}^{commit}`]) };
    } catch {
      // try the next candidate
    }
  }
  throw new Error(`buf-breaking: git ref "${baseRef}" not found (fetch it, or set BUF_BREAKING_BASE)`);
}

const base = resolveBase();
const baseProtos = git(["ls-tree", "-r", "--name-only", base.commit, "--", "proto"])
  .split("\n")
  .filter((f) => f.endsWith(".proto") && !f.startsWith("proto/third_party/"));
if (baseProtos.length === 0) {
  console.log(`buf-breaking: ${base.ref} (${base.commit.slice(0, 12)}) has no protos yet; nothing to compare.`);
  process.exit(0);
}

const tmp = mkdtempSync(join(tmpdir(), "promptcraft-buf-breaking-"));
const worktree = join(tmp, "base");
let worktreeAdded = false;
try {
  git(["worktree", "add", "--detach", "--quiet", worktree, base.commit], { stdio: ["ignore", "pipe", "inherit"] });
  worktreeAdded = true;
  symlinkSync(join(repoRoot, "node_modules"), join(worktree, "node_modules"), "dir");

  const baseImage = join(tmp, "base.binpb");
  const currentImage = join(tmp, "current.binpb");
  prepareThirdParty(worktree);
  buildImage(worktree, baseImage);
  prepareThirdParty(repoRoot);
  buildImage(repoRoot, currentImage);

  console.log(`buf-breaking: working tree against ${base.ref} (${base.commit.slice(0, 12)})`);
  run(
    process.execPath,
    [bufBin, "breaking", currentImage, "--against", baseImage, "--exclude-imports", "--config", "proto/buf.yaml"],
    repoRoot,
  );
  console.log("buf-breaking: no breaking changes.");
} catch (error) {
  console.error(error instanceof Error ? error.message : error);
  process.exitCode = 1;
} finally {
  if (worktreeAdded) {
    try {
      git(["worktree", "remove", "--force", worktree]);
    } catch {
      git(["worktree", "prune"]);
    }
  }
  rmSync(tmp, { recursive: true, force: true });
}
