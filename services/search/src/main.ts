import { runService } from "@promptcraft/platform";
import { searchService } from "./index.js";

runService(searchService);
