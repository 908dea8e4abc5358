export * from "./knex.js";
export * from "./tenant.js";
export * from "./migrate.js";
export * from "./embedded.js";
export { coreMigrations } from "./migrations/index.js";
export * from "./events.js";
export * from "./content-hash.js";
export * from "./time.js";
export { closeKnex, type CloseKnexOptions } from "./cancel.js";
