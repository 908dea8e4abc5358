import { runService } from "@promptcraft/platform";
import { contentService } from "./index.js";

runService(contentService);
