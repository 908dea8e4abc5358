import { parseArgs } from "node:util";
import { createKnex } from "@promptcraft/db";
import { formatCursor, listConsumers, LOG_START, logEnd, parseCursor, resetConsumer, type EventCursor } from "@promptcraft/platform";

/**
 * `promptcraft events list` and `promptcraft events replay`: the durable consumers of the event log
 * (packages/platform/src/event-log.ts) as an operator sees them, straight in the database
 * (DATABASE_URL, or the embedded engine of a running `npm start`). `replay` moves a consumer's
 * checkpoint back (or forward) so that its projection is rebuilt from there — the seed's "event replay
 * for debugging"; the active replica re-reads the checkpoint at once (its lease is cleared). It acts as
 * `promptcraft_analytics`, the owner of the audit log's reading side.
 */

const USAGE =
  "promptcraft events list                                  the consumers: checkpoint, lease, last update (JSON lines)\n" +
  "       promptcraft events replay --consumer <name> --from <cursor|start|end>\n" +
  "                                                         reset a consumer's checkpoint (cursor: <transaction_id>-<id>, as the audit log shows it)";

function usage(): number {
  process.stderr.write(`usage: ${USAGE}\n`);
  return 2;
}

/** Runs `events <args>` against the database at `url`; output lines go to `out`. */
export async function eventsCommand(args: string[], url: string, out: (line: string) => void = (l) => process.stdout.write(`${l}\n`)): Promise<number> {
  const [action, ...rest] = args;
  if (action !== "list" && action !== "replay") return usage();
  const { values } = parseArgs({ args: rest, options: { consumer: { type: "string" }, from: { type: "string" } } });
  const db = createKnex({ url, poolMax: 1, applicationName: "promptcraft-events" });
  try {
    if (action === "list") {
      const now = Date.now();
      for (const c of await listConsumers(db, "analytics")) {
        out(
          JSON.stringify({
            consumer: c.name,
            checkpoint: formatCursor(c.checkpoint),
            active: c.leaseOwner !== null && c.leaseUntil !== null && c.leaseUntil.getTime() > now,
            leaseOwner: c.leaseOwner,
            leaseUntil: c.leaseUntil?.toISOString() ?? null,
            updatedAt: c.updatedAt.toISOString(),
          }),
        );
      }
      return 0;
    }
    if (!values.consumer || !values.from) return usage();
    let cursor: EventCursor | undefined;
    if (values.from === "start") cursor = LOG_START;
    else if (values.from === "end") cursor = await logEnd({ db, service: "analytics" });
    else cursor = parseCursor(values.from);
    if (!cursor) {
      process.stderr.write(`events replay: --from must be <transaction_id>-<id>, start or end, got ${JSON.stringify(values.from)}\n`);
      return 2;
    }
    if (!/^[a-z][a-z0-9_.:-]{0,99}$/.test(values.consumer)) {
      process.stderr.write(`events replay: --consumer must be a consumer name (lower case, digits, _ . : -), got ${JSON.stringify(values.consumer)}\n`);
      return 2;
    }
    await resetConsumer(db, "analytics", values.consumer, cursor);
    out(JSON.stringify({ consumer: values.consumer, checkpoint: formatCursor(cursor) }));
    return 0;
  } finally {
    await db.destroy();
  }
}
