// The service's dashboard, as data (TAGBEEZ_DASHBOARD, which template.yaml writes out too and
// tests/deploy_monitoring.rs compares) and as the CloudWatch dashboard built from that data.
import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import type { Construct } from 'constructs';

import { tagbeezSearchExpression } from './metrics';

/** One line (or, with `search`, one line per dimension value) of a dashboard graph. */
export interface TagbeezSeriesSpec {
  readonly metric: string;
  readonly stat: string;
  /**
   * Draw it with a SEARCH over exactly these dimension names, one line per value (`[]`: the
   * metric's only series, which has no dimensions, for a metric recorded without labels that is
   * not a rollup); without it, the no-dimension rollup.
   */
  readonly search?: readonly string[];
  /** `AWS/Lambda`: the function's own metric (FunctionName dimension). @default - the service's namespace */
  readonly namespace?: 'AWS/Lambda';
  /**
   * One line per tag of the model (the service's `driftTags`, model/labels.json by default), on
   * the metric's `[tag]` series, labelled by the tag.
   */
  readonly perTag?: boolean;
  /** The line's label (rollups and Lambda metrics; SEARCH lines are labelled by CloudWatch). */
  readonly label?: string;
  /** On the right axis. */
  readonly right?: boolean;
}

/** One dashboard widget: an alarm's graph, or a graph of series. */
export interface TagbeezWidgetSpec {
  readonly title: string;
  /** The TAGBEEZ_ALARMS id of an alarm widget (6 wide); graphs are 8 wide. */
  readonly alarm?: string;
  readonly series?: readonly TagbeezSeriesSpec[];
}

/**
 * The dashboard, in order: the four alarms, then three graphs a row (as `template.yaml`'s
 * Dashboard, which tests/deploy_monitoring.rs compares with this), the row before last shops and
 * experiments, the last row drift. The alarms that come with an option are not on it (the SAM
 * template's dashboard cannot name a resource that may not exist), nor are the drift alarms (the
 * drift row draws their metrics); the events and queue graphs are, and stay empty while their
 * option is off.
 */
export const TAGBEEZ_DASHBOARD: readonly TagbeezWidgetSpec[] = [
  { title: 'Error rate (%) > 1 over 5 min', alarm: 'ErrorRate' },
  { title: 'p99 latency (ms) > 1000 over 5 min', alarm: 'LatencyP99' },
  { title: 'Store errors > 5 in 5 min', alarm: 'StoreErrors' },
  { title: 'Lambda throttles > 0 in 5 min', alarm: 'Throttles' },
  {
    title: 'Requests (left) and server errors (right), Sum per 5 min',
    series: [
      { metric: 'tagbeez_requests', stat: 'Sum', label: 'requests' },
      { metric: 'tagbeez_server_errors', stat: 'Sum', label: 'server errors (5xx)', right: true },
    ],
  },
  {
    title: 'Request latency, ms (p50, p99)',
    series: [
      { metric: 'tagbeez_request_latency_ms', stat: 'p50', label: 'p50' },
      { metric: 'tagbeez_request_latency_ms', stat: 'p99', label: 'p99' },
    ],
  },
  {
    title: 'Time split by route, average ms: tokenize, inference, store',
    series: [
      { metric: 'tagbeez_tokenize_ms', stat: 'Average', search: ['model_version', 'route'] },
      { metric: 'tagbeez_inference_ms', stat: 'Average', search: ['model_version', 'route'] },
      { metric: 'tagbeez_store_ms', stat: 'Average', search: ['model_version', 'route'] },
    ],
  },
  {
    title: 'Tags selected, by tag (Sum)',
    series: [
      { metric: 'tagbeez_tags_selected', stat: 'Sum', search: ['model_version', 'tag'] },
    ],
  },
  {
    title: 'Conversation tag switches (Sum)',
    series: [
      { metric: 'tagbeez_conversation_switches', stat: 'Sum', search: ['model_version'] },
    ],
  },
  {
    title: 'Batch size, messages per inference (average)',
    series: [
      { metric: 'tagbeez_batch_size', stat: 'Average', search: ['model_version'] },
    ],
  },
  {
    title: 'Store errors by kind, and store retries (Sum)',
    series: [
      { metric: 'tagbeez_store_errors', stat: 'Sum', search: ['kind', 'model_version'] },
      { metric: 'tagbeez_store_retries', stat: 'Sum', search: ['model_version'] },
    ],
  },
  {
    title: 'Overload rejections, 503 overloaded (Sum)',
    series: [
      { metric: 'tagbeez_overload_rejections', stat: 'Sum', label: 'overload rejections' },
    ],
  },
  {
    title: 'Cold starts (left, Sum) and init time (right, ms)',
    series: [
      { metric: 'tagbeez_cold_starts', stat: 'Sum', search: ['model_version'] },
      { metric: 'tagbeez_init_ms', stat: 'Average', search: ['model_version'], right: true },
    ],
  },
  {
    title: 'Feedback received (Sum)',
    series: [
      { metric: 'tagbeez_feedback', stat: 'Sum', search: ['model_version'] },
    ],
  },
  {
    title: 'Lambda throttles (Sum)',
    series: [
      { metric: 'Throttles', stat: 'Sum', namespace: 'AWS/Lambda', label: 'throttles' },
    ],
  },
  {
    title: 'Events published by kind (left) and lost (right), Sum',
    series: [
      { metric: 'tagbeez_events_published', stat: 'Sum', search: ['kind', 'model_version'] },
      { metric: 'tagbeez_events_lost', stat: 'Sum', label: 'events lost', right: true },
    ],
  },
  {
    title: 'Queue records failed, by reason (Sum)',
    series: [
      { metric: 'tagbeez_queue_failures', stat: 'Sum', search: ['model_version', 'reason'] },
    ],
  },
  {
    title: 'Personal data redacted, by kind (Sum)',
    series: [
      { metric: 'tagbeez_redactions', stat: 'Sum', search: ['kind'] },
    ],
  },
  {
    title: 'Probabilities by tag and bin, 0-9 (Sum)',
    series: [
      { metric: 'tagbeez_probability_bin', stat: 'Sum', search: ['bin', 'tag'] },
    ],
  },
  {
    title: 'Shops: profile reads by how (left) and experiment exposures lost (right), Sum',
    series: [
      { metric: 'tagbeez_profile_reads', stat: 'Sum', search: ['how'] },
      { metric: 'tagbeez_exposures_lost', stat: 'Sum', search: [], right: true },
    ],
  },
  {
    title: 'Experiments: outcomes by outcome, experiment and variant (Sum)',
    series: [
      { metric: 'tagbeez_outcomes', stat: 'Sum', search: ['experiment', 'outcome', 'variant'] },
    ],
  },
  {
    title: 'Experiments: messages (left) and tags selected (right) by experiment and variant, Sum',
    series: [
      { metric: 'tagbeez_experiment_messages', stat: 'Sum', search: ['experiment', 'variant'] },
      { metric: 'tagbeez_experiment_tags_selected', stat: 'Sum', search: ['experiment', 'variant'], right: true },
    ],
  },
  {
    title: 'Drift: selection rate by tag (Average)',
    series: [
      { metric: 'tagbeez_selection_rate', stat: 'Average', perTag: true },
    ],
  },
  {
    title: 'Drift: no-tag rate (Average)',
    series: [
      { metric: 'tagbeez_no_tag_rate', stat: 'Average', label: 'no tag' },
    ],
  },
  {
    title: 'Drift: population stability index by tag (Maximum)',
    series: [
      { metric: 'tagbeez_psi', stat: 'Maximum', perTag: true },
    ],
  },
];

/** What the dashboard shows, and its name. */
export interface TagbeezDashboardOptions {
  /** The dashboard's name (`<alarmNamePrefix>-<region>`). */
  readonly name: string;
  /** The service's metrics namespace. */
  readonly namespace: string;
  /** The function, whose AWS/Lambda metrics some graphs show. */
  readonly function: lambda.IFunction;
  /** The alarms by TAGBEEZ_ALARMS id, for the alarm widgets. */
  readonly alarms: Readonly<Record<string, cloudwatch.Alarm>>;
  /** The model's tags, for the `perTag` series. */
  readonly tags: readonly string[];
}

/** The dashboard of TAGBEEZ_DASHBOARD: a row of alarm widgets, then the graphs three a row. */
export function createDashboard(scope: Construct, options: TagbeezDashboardOptions): cloudwatch.Dashboard {
  const dashboard = new cloudwatch.Dashboard(scope, 'Dashboard', { dashboardName: options.name });
  const period = Duration.minutes(5);
  const alarmWidgets: cloudwatch.IWidget[] = [];
  const graphs: cloudwatch.IWidget[] = [];
  for (const widget of TAGBEEZ_DASHBOARD) {
    if (widget.alarm !== undefined) {
      const alarm = options.alarms[widget.alarm];
      if (!alarm) throw new Error(`TagbeezService: the dashboard names an unknown alarm ${widget.alarm}`);
      alarmWidgets.push(new cloudwatch.AlarmWidget({ title: widget.title, alarm, width: 6, height: 6 }));
    } else {
      graphs.push(graphWidget(widget, options, period));
    }
  }
  dashboard.addWidgets(...alarmWidgets);
  for (let i = 0; i < graphs.length; i += 3) dashboard.addWidgets(...graphs.slice(i, i + 3));
  return dashboard;
}

/** A graph of the widget's series, each on its axis. */
function graphWidget(widget: TagbeezWidgetSpec, options: TagbeezDashboardOptions, period: Duration): cloudwatch.IWidget {
  const all = widget.series ?? [];
  const series = (s: TagbeezSeriesSpec): cloudwatch.IMetric[] =>
    s.perTag ? options.tags.map((tag) => tagMetric(s, tag, options, period)) : [seriesMetric(s, options, period)];
  return new cloudwatch.GraphWidget({
    title: widget.title,
    width: 8,
    height: 6,
    period,
    stacked: false,
    left: all.filter((s) => !s.right).flatMap(series),
    right: all.filter((s) => s.right).flatMap(series),
  });
}

/** One line of a `perTag` series: the metric's `[tag]` series of `tag`, labelled by the tag. */
function tagMetric(s: TagbeezSeriesSpec, tag: string, options: TagbeezDashboardOptions, period: Duration): cloudwatch.IMetric {
  return new cloudwatch.Metric({
    namespace: options.namespace,
    metricName: s.metric,
    dimensionsMap: { tag },
    statistic: s.stat,
    label: tag,
    period,
  });
}

/** One series: a SEARCH (one line per dimension value), a rollup, or a function metric. */
function seriesMetric(s: TagbeezSeriesSpec, options: TagbeezDashboardOptions, period: Duration): cloudwatch.IMetric {
  const namespace = options.namespace;
  if (s.search !== undefined) {
    return new cloudwatch.SearchExpression({
      expression: tagbeezSearchExpression(namespace, s.metric, s.search, s.stat, period.toSeconds()),
      // No label: CloudWatch labels each line of a SEARCH by its dimension values ('' keeps
      // CDK from using the whole expression as the label).
      label: '',
      period,
    });
  }
  if (s.namespace === 'AWS/Lambda') {
    return options.function.metric(s.metric, { statistic: s.stat, label: s.label, period });
  }
  return new cloudwatch.Metric({ namespace, metricName: s.metric, statistic: s.stat, label: s.label, period });
}
