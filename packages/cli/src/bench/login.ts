import { randomBytes, randomUUID, scrypt } from "node:crypto";
import { createServiceClient } from "@promptcraft/client";
import { loadConfig, startService } from "@promptcraft/platform";
import { identityService } from "@promptcraft/identity";
import { AuthService } from "@promptcraft/proto/promptcraft/identity/v1/auth_service_pb";
import { createTenant, createUser, provisionTestDatabase, uniqueSlug } from "@promptcraft/testing";
import { migrateAll } from "../database.js";
import { median } from "./h2load.js";

const PASSWORD = "benchmark password 0123456789";

/** The stored form identity writes (`$scrypt$ln=15,r=8,p=1$salt$key`), for the benchmark's user. */
async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await new Promise<Buffer>((resolve, reject) =>
    scrypt(password, salt, 32, { N: 2 ** 15, r: 8, p: 1, maxmem: 64 * 1024 * 1024 }, (err, k) => (err ? reject(err) : resolve(k))),
  );
  const b64 = (b: Buffer) => b.toString("base64").replace(/=+$/, "");
  return `$scrypt$ln=15,r=8,p=1$${b64(salt)}$${b64(key)}`;
}

/**
 * `npm run bench login`: password logins per second through AuthService.Login over gRPC (the
 * password hash dominates: scrypt N = 2^15, r = 8, p = 1, on libuv's thread pool), and the same
 * for failed logins (unknown email, wrong password), which must cost about the same. Uses
 * DATABASE_URL, else the embedded engine. Prints per-round figures and the medians.
 */
export async function benchLogin(args: string[]): Promise<number> {
  const rounds = Number(args[0] ?? process.env.BENCH_ROUNDS ?? 3);
  const seconds = Number(process.env.BENCH_SECONDS ?? 3);
  const concurrency = Number(process.env.BENCH_CONCURRENCY ?? 8);
  const db = await provisionTestDatabase(process.env, (line) => console.log(line));
  try {
    await migrateAll(db.url);
    const identity = await startService(
      identityService,
      loadConfig(identityService.config, {
        DATABASE_URL: db.url,
        GRPC_PORT: "0",
        CONNECT_PORT: "0",
        LOG_LEVEL: "silent",
        DB_POOL_MAX: String(concurrency + 2),
        // Measure hashing, not the throttle.
        LOGIN_THROTTLE_ACCOUNT_FAILURES: "10000",
        LOGIN_THROTTLE_ADDRESS_FAILURES: "100000",
      }),
    );
    try {
      const slug = uniqueSlug("bench");
      const tenantId = await createTenant(identity.deps.db, { slug });
      const email = `bench-${randomUUID().slice(0, 8)}@example.test`;
      await createUser(identity.deps.db, tenantId, "editor", { email, passwordHash: await hashPassword(PASSWORD) });
      const client = createServiceClient(AuthService, `http://127.0.0.1:${identity.grpcPort}`, { protocol: "grpc" });
      const kinds = {
        success: { tenantSlug: slug, email, password: PASSWORD },
        "wrong password": { tenantSlug: slug, email, password: "not the password" },
        "unknown email": { tenantSlug: slug, email: `nobody-${email}`, password: PASSWORD },
      };
      const run = async (request: (typeof kinds)[keyof typeof kinds], expectOk: boolean): Promise<number> => {
        const end = Date.now() + seconds * 1000;
        let done = 0;
        await Promise.all(
          Array.from({ length: concurrency }, async () => {
            while (Date.now() < end) {
              const ok = await client.login(request).then(
                () => true,
                () => false,
              );
              if (ok !== expectOk) throw new Error(`login ${expectOk ? "failed" : "succeeded"} unexpectedly`);
              done++;
            }
          }),
        );
        return done / seconds;
      };
      console.log(`login benchmark: AuthService.Login over gRPC, ${concurrency} concurrent callers, ${seconds}s per run, ${rounds} rounds`);
      const results: Record<string, number[]> = { success: [], "wrong password": [], "unknown email": [] };
      for (let round = 1; round <= rounds; round++) {
        const line: string[] = [];
        for (const [name, request] of Object.entries(kinds)) {
          const rate = await run(request, name === "success");
          results[name]!.push(rate);
          line.push(`${name} ${rate.toFixed(1)}/s`);
        }
        console.log(`  round ${round}: ${line.join(", ")}`);
      }
      for (const [name, rates] of Object.entries(results)) console.log(`median ${name}: ${median(rates).toFixed(1)} logins/s`);
      return 0;
    } finally {
      await identity.close();
    }
  } finally {
    await db.stop();
  }
}
