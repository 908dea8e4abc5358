import { runService } from "@promptcraft/platform";
import { analyticsService } from "./index.js";

runService(analyticsService);
