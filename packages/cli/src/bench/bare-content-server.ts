// The minimal path of the content benchmark: a bare @grpc/grpc-js server answering
// ContentService/GetEntity with ONE `pg` query — the SELECT the content service sends for it
// (BENCH_SQL, BENCH_BINDINGS as JSON; the binding equal to BENCH_ENTITY_ID is replaced by the
// request's entity id), as a named prepared statement (parsed and planned once per connection, as the
// service's reads are), on a `pg` pool of DB_POOL_MAX connections with the services' type parsers —
// and the row as an Entity. No authentication, no tenant context, no transaction, no logging: the
// floor the service's GetEntity is compared with. Prints its port.
import * as grpc from "@grpc/grpc-js";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { JsonObject } from "@bufbuild/protobuf";
import { dbTypes, pg } from "@promptcraft/db";
import { EntitySchema } from "@promptcraft/proto/promptcraft/content/v1/resources_pb";
import { GetEntityRequestSchema, type GetEntityRequest } from "@promptcraft/proto/promptcraft/content/v1/content_service_pb";

const sql = process.env.BENCH_SQL!;
const bindings = JSON.parse(process.env.BENCH_BINDINGS!) as unknown[];
const entityBinding = bindings.indexOf(process.env.BENCH_ENTITY_ID);
const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: Number(process.env.DB_POOL_MAX ?? 8), types: dbTypes });

const server = new grpc.Server();
server.register<GetEntityRequest, Uint8Array>(
  "/promptcraft.content.v1.ContentService/GetEntity",
  (call: grpc.ServerUnaryCall<GetEntityRequest, Uint8Array>, callback: grpc.sendUnaryData<Uint8Array>) => {
    const values = [...bindings];
    values[entityBinding] = call.request.entityId;
    pool.query({ name: "bench_get_entity", text: sql, values }).then(
      ({ rows }) => {
        const row = rows[0] as Record<string, unknown> | undefined;
        if (!row) return callback({ code: grpc.status.NOT_FOUND, details: "entity not found" });
        callback(null, toBinary(EntitySchema, create(EntitySchema, entityOf(row))));
      },
      (err: Error) => callback({ code: grpc.status.INTERNAL, details: err.message }),
    );
  },
  (response: Uint8Array) => Buffer.from(response),
  (request: Buffer) => fromBinary(GetEntityRequestSchema, request),
  "unary",
);
server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, port) => {
  if (err) throw err;
  process.stdout.write(`PORTS ${port}\n`);
});
process.on("SIGTERM", () => {
  server.forceShutdown();
  void pool.end().then(() => process.exit(0));
});

/** The row as an Entity: the same fields the service fills (enums as fixed values: no lookups to speak of). */
function entityOf(row: Record<string, unknown>) {
  const time = (value: unknown) => (value instanceof Date ? timestampFromDate(value) : undefined);
  return {
    id: row.id as string,
    tenantId: row.tenant_id as string,
    type: 2,
    ownerId: `users/${row.owner_id as string}`,
    title: row.title as string,
    description: row.description as string,
    status: 1,
    visibility: 2,
    content: (row.content ?? undefined) as JsonObject | undefined,
    tags: row.tags as string[],
    metadata: (row.metadata ?? undefined) as JsonObject | undefined,
    version: row.version as number,
    currentVersion: row.current_version as number,
    commitMessage: row.commit_message as string,
    authorId: `users/${row.author_id as string}`,
    contentHash: row.content_hash as string,
    labels: ["latest", ...(row.labels as string[])],
    createTime: time(row.created_at),
    updateTime: time(row.updated_at),
    revisionCreateTime: time(row.valid_from),
    etag: row.row_version as string,
    favorite: row.favorite as boolean,
    callerPermission: 2,
  };
}
