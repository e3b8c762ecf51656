import type { Phase } from '../domain/challenge-instance.ts';
import { shortDuration } from '../domain/durations.ts';
import { lastErrorOf, phaseOf, type InstanceView } from '../domain/instance-view.ts';
import { escapeHtml, renderPage } from './html.ts';

export interface QueueCounts {
  queue: string;
  counts: Record<string, number>;
}

/** What the instance page shows: the instances matching every field set. */
export interface InstanceFilter {
  namespace?: string;
  team?: string;
  challenge?: string;
}

/** The query parameters of the instance page, in the order its form shows them. */
export const FILTER_FIELDS = ['namespace', 'team', 'challenge'] as const;

export interface InstancePageModel {
  instances: InstanceView[];
  /** Job counts per queue, or why they could not be read. */
  queues: QueueCounts[] | { error: string };
  /** Who is looking, and whether they may change anything. */
  viewer: { name: string; readOnly: boolean };
  filter: InstanceFilter;
  /** Where the dashboard is served (`/dashboard`). */
  basePath: string;
  now: number;
  refreshSeconds: number;
}

/** The phase summary's order: what runs first, then what is on its way, then what ended. */
const PHASE_ORDER: readonly Phase[] = ['Running', 'Starting', 'Scheduled', 'Pending', 'Stopping', 'Stopped', 'Failed', 'Expired', 'Terminating'];
const QUEUE_STATES = ['active', 'waiting', 'prioritized', 'delayed', 'failed', 'completed'] as const;

function endpointCell(view: InstanceView): string {
  if (view.endpoints.length === 0) return '<span class="muted">–</span>';
  return view.endpoints
    .map((endpoint) => {
      const text = escapeHtml(`${endpoint.host}:${endpoint.port}${endpoint.protocol === 'UDP' ? '/udp' : ''}`);
      return endpoint.url.startsWith('http://') || endpoint.url.startsWith('https://') ? `<a href="${escapeHtml(endpoint.url)}">${text}</a>` : text;
    })
    .join('<br>');
}

function expiryCell(view: InstanceView, now: number): string {
  // Every instance ends (at ttlSeconds, or at the deployment's maximum lifetime); before it runs, when is not known yet.
  if (view.expiresAt === null) return '<span class="muted">once running</span>';
  const left = Date.parse(view.expiresAt) - now;
  const label = left <= 0 ? `${shortDuration(-left)} ago` : `in ${shortDuration(left)}`;
  return `<time datetime="${escapeHtml(view.expiresAt)}" title="${escapeHtml(view.expiresAt)}">${label}</time>`;
}

/** Natural order: team-7 before team-12. */
const byText = (a: string, b: string): number => a.localeCompare(b, 'en', { numeric: true });

function instanceRows(instances: InstanceView[], now: number): string {
  const sorted = [...instances].sort((a, b) => byText(a.team, b.team) || byText(a.challenge, b.challenge) || byText(a.name, b.name));
  return sorted
    .map((view) => {
      const phase = phaseOf(view);
      const error = lastErrorOf(view);
      return `<tr data-team="${escapeHtml(view.team)}" data-challenge="${escapeHtml(view.challenge)}" data-phase="${escapeHtml(phase)}">
<td class="nowrap">${escapeHtml(view.team)}</td>
<td>${escapeHtml(view.challenge)}<div class="muted small">${escapeHtml(`${view.namespace}/${view.name}`)}</div></td>
<td><span class="phase phase-${escapeHtml(phase.toLowerCase())}">${escapeHtml(phase)}</span></td>
<td>${endpointCell(view)}</td>
<td class="nowrap">${view.node === null ? '<span class="muted">–</span>' : escapeHtml(view.node)}</td>
<td>${view.createdAt === null ? '' : `<time datetime="${escapeHtml(view.createdAt)}" title="${escapeHtml(view.createdAt)}">${shortDuration(now - Date.parse(view.createdAt))}</time>`}</td>
<td>${expiryCell(view, now)}</td>
<td class="error">${error === undefined ? '' : escapeHtml(error)}</td>
</tr>`;
    })
    .join('\n');
}

function phaseSummary(instances: InstanceView[]): string {
  const counts = new Map<string, number>();
  for (const view of instances) counts.set(phaseOf(view), (counts.get(phaseOf(view)) ?? 0) + 1);
  const parts = PHASE_ORDER.filter((phase) => counts.has(phase)).map((phase) => `<span class="phase phase-${phase.toLowerCase()}">${phase} ${counts.get(phase) ?? 0}</span>`);
  return parts.length === 0 ? '' : parts.join(' ');
}

function queueTable(queues: InstancePageModel['queues'], basePath: string): string {
  if (!Array.isArray(queues)) return `<p class="error">Queues could not be read: ${escapeHtml(queues.error)}</p>`;
  if (queues.length === 0) return '<p class="muted">No queues yet: no job was ever queued under this prefix.</p>';
  const head = QUEUE_STATES.map((state) => `<th>${state}</th>`).join('');
  const rows = queues
    .map(({ queue, counts }) => `<tr data-queue="${escapeHtml(queue)}"><td><a href="${escapeHtml(`${basePath}/queues/queue/${encodeURIComponent(queue)}`)}">${escapeHtml(queue)}</a></td>${QUEUE_STATES.map((state) => `<td class="num">${counts[state] ?? 0}</td>`).join('')}</tr>`)
    .join('\n');
  return `<table id="queues"><thead><tr><th>queue</th>${head}</tr></thead><tbody>\n${rows}\n</tbody></table>`;
}

function filterForm(filter: InstanceFilter, basePath: string): string {
  const fields = FILTER_FIELDS.map((name) => `<label>${name} <input name="${name}" value="${escapeHtml(filter[name] ?? '')}" size="14"></label>`).join(' ');
  return `<form method="get" action="${escapeHtml(`${basePath}/`)}">${fields} <button type="submit">Filter</button> <a href="${escapeHtml(`${basePath}/`)}">all</a></form>`;
}

/** True when the instance matches every field the filter sets. */
export function matchesFilter(view: InstanceView, filter: InstanceFilter): boolean {
  return FILTER_FIELDS.every((field) => filter[field] === undefined || view[field] === filter[field]);
}

/**
 * The instance view of the dashboard: one row per instance, sorted by team and
 * challenge, with phase, endpoint, node, age, expiry and the last error, above
 * the job counts of every queue. Plain HTML that refreshes itself; every value is
 * escaped, and nothing of an instance's env, args or command is ever shown.
 */
export function renderInstancePage(model: InstancePageModel): string {
  const { instances, viewer, basePath, now } = model;
  const shown = instances.filter((view) => matchesFilter(view, model.filter));
  const table = shown.length === 0
    ? '<p class="muted" id="no-instances">No ChallengeInstances match.</p>'
    : `<table id="instances"><thead><tr><th>team</th><th>challenge</th><th>phase</th><th>endpoint</th><th>node</th><th>age</th><th>expires</th><th>last error</th></tr></thead><tbody>\n${instanceRows(shown, now)}\n</tbody></table>`;
  return renderPage({
    title: 'instances',
    nav: [['Challenges', `${basePath}/challenges/`], ['Queue dashboard', `${basePath}/queues/`]],
    summary: `${shown.length} of ${instances.length} instance${instances.length === 1 ? '' : 's'} ${phaseSummary(shown)}`,
    viewer,
    refreshSeconds: model.refreshSeconds,
    body: `${filterForm(model.filter, basePath)}
${table}
<h2>Queues</h2>
${queueTable(model.queues, basePath)}`,
  });
}
