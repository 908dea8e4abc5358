import { runService } from "@promptcraft/platform";
import { graphService } from "./index.js";

runService(graphService);
