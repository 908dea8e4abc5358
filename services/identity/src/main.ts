import { runService } from "@promptcraft/platform";
import { identityService } from "./index.js";

runService(identityService);
