export { SCHEMA_SLICES } from "./schema.js";
export { SERVICES, serviceMain } from "./services.js";
export { migrateAll } from "./database.js";
export { ensureDemoAccount, type DemoAccount } from "./demo.js";
