// The service's metrics: the names it writes (CloudWatch Embedded Metric Format lines in its
// log) and how the dashboard finds every dimension value of one.

/**
 * The service's metric names (the issue 11 contract; the Rust `tagbeez::telemetry::names::ALL`).
 * They are CloudWatch Embedded Metric Format lines in the function's log, in the
 * `metricsNamespace` namespace, with the dimensions shown in TAGBEEZ_DASHBOARD's SEARCH
 * expressions.
 */
export const TAGBEEZ_METRICS = [
  'tagbeez_requests',
  'tagbeez_server_errors',
  'tagbeez_request_latency_ms',
  'tagbeez_tokenize_ms',
  'tagbeez_inference_ms',
  'tagbeez_store_ms',
  'tagbeez_batch_size',
  'tagbeez_tags_selected',
  'tagbeez_conversation_switches',
  'tagbeez_store_errors',
  'tagbeez_store_retries',
  'tagbeez_overload_rejections',
  'tagbeez_cold_starts',
  'tagbeez_init_ms',
  'tagbeez_feedback',
  'tagbeez_events_published',
  'tagbeez_events_lost',
  'tagbeez_queue_failures',
  'tagbeez_redactions',
  'tagbeez_probability_bin',
  'tagbeez_selection_rate',
  'tagbeez_no_tag_rate',
  'tagbeez_psi',
  'tagbeez_profile_reads',
  'tagbeez_exposures_lost',
  'tagbeez_outcomes',
  'tagbeez_experiment_messages',
  'tagbeez_experiment_tags_selected',
] as const;

export type TagbeezMetricName = (typeof TAGBEEZ_METRICS)[number];

/**
 * The metrics that are also written with no dimensions at all (a rollup over every route and
 * model version): what the alarms read.
 */
export const TAGBEEZ_ROLLUP_METRICS: readonly TagbeezMetricName[] = [
  'tagbeez_requests',
  'tagbeez_server_errors',
  'tagbeez_request_latency_ms',
  'tagbeez_store_errors',
  'tagbeez_overload_rejections',
  'tagbeez_events_lost',
  'tagbeez_queue_failures',
  'tagbeez_no_tag_rate',
];

/**
 * The metrics that are also written with exactly the dimension set `[tag]` (no model version, no
 * shop): the per-tag series the drift alarms and the dashboard's drift row read.
 */
export const TAGBEEZ_TAG_ROLLUP_METRICS: readonly TagbeezMetricName[] = ['tagbeez_selection_rate', 'tagbeez_psi'];

/**
 * A SEARCH expression over the service's metric `metric` with exactly the dimensions `dims`.
 * The namespace and dimension names are quoted, as CloudWatch needs for names with characters
 * other than letters and digits.
 */
export function tagbeezSearchExpression(namespace: string, metric: string, dims: readonly string[], stat: string, periodSeconds = 300): string {
  const schema = [namespace, ...dims].map((name) => `"${name}"`).join(',');
  return `SEARCH('{${schema}} MetricName="${metric}"', '${stat}', ${periodSeconds})`;
}
