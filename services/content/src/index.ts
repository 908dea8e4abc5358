import type { UsageReporter } from "@promptcraft/client";
import { QuotaGate, usageReporting, type ServiceModule } from "@promptcraft/platform";
import { QuotaMetric } from "@promptcraft/proto/promptcraft/analytics/v1/resources_pb";
import { ContentConfig } from "./config.js";
import { routes } from "./routes.js";

/**
 * What content keeps while it runs: its usage reporter (undefined when reporting is off) and the
 * render quota check (analytics' CheckQuota of QUOTA_METRIC_MONTHLY_RENDERS, cached per tenant).
 */
export interface ContentState {
  usage: UsageReporter | undefined;
  renderQuota: QuotaGate | undefined;
}

/**
 * The content service, as `startService` / `runService` take it. Setup starts its usage reporter
 * (reads by label and renders streamed to analytics) and its render quota check; shutdown flushes
 * the reporter.
 */
export const contentService: ServiceModule<ContentConfig, ContentState> = {
  name: "content",
  config: ContentConfig,
  setup(deps) {
    const { reporter, metrics } = usageReporting(deps.config, "content", deps.log);
    const renderQuota = new QuotaGate({
      analyticsUrl: deps.config.ANALYTICS_URL,
      metric: QuotaMetric.MONTHLY_RENDERS,
      cacheMs: deps.config.QUOTA_CACHE_MS,
      timeoutMs: deps.config.QUOTA_CHECK_TIMEOUT_MS,
      log: deps.log.child({ component: "render-quota" }),
    });
    return Promise.resolve({
      state: { usage: reporter, renderQuota },
      metrics: [...metrics, ...renderQuota.metrics],
      // BACKGROUND_STOP_MS (1 s) is all close() gets: flush within most of it.
      close: async () => {
        renderQuota.close();
        await reporter?.close(800);
      },
    });
  },
  routes,
};

export { ContentConfig };
