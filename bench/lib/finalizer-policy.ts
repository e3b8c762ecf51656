// The chart's MutatingAdmissionPolicy that adds ctfleet's finalizer to each instance
// as the API server creates it (charts/ctfleet/templates/instance-finalizer-policy.yaml),
// put on the stack as `helm install` would: the benchmark runs ctfleet as the chart
// installs it, and the tests count a start's writes with and without it.
import { join } from 'node:path';
import { FINALIZER } from '../../src/domain/names.ts';
import { run } from '../../test/support/cluster.ts';
import { kubectl, ROOT } from '../../test/support/ctfleet.ts';

const TEMPLATE = 'templates/instance-finalizer-policy.yaml';
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export interface FinalizerPolicy {
  /** The API version rendered (`v1`, `v1beta1`), or undefined: the API server serves neither, nothing was applied. */
  version: string | undefined;
  /** Deletes the policy and its binding (nothing when none was applied). */
  remove(): Promise<void>;
}

/**
 * Renders the template for release `release` with `admission.instanceFinalizer=auto`
 * against the stack's API server (`helm template --validate` reads the APIs it
 * serves), applies it, and waits until a server-side dry run of a create comes back
 * carrying {@link FINALIZER}. Throws if helm or kubectl fail, or if the policy does
 * not take effect within 60 s.
 */
export async function applyFinalizerPolicy(release: string): Promise<FinalizerPolicy> {
  const rendered = await run('helm', ['template', release, join(ROOT, 'charts/ctfleet'), '--validate', '--show-only', TEMPLATE], { timeoutMs: 60_000 });
  // helm refuses --show-only of a template that renders nothing.
  if (rendered.code !== 0 && /could not find template/.test(rendered.stderr)) return { version: undefined, remove: () => Promise.resolve() };
  if (rendered.code !== 0) throw new Error(`helm template ${TEMPLATE}: ${rendered.stderr}`);
  const version = /^apiVersion: admissionregistration\.k8s\.io\/(\S+)$/m.exec(rendered.stdout)?.[1];
  const applied = await kubectl(['apply', '-f', '-'], rendered.stdout);
  if (applied.code !== 0) throw new Error(`kubectl apply the finalizer policy: ${applied.stderr}`);
  const remove = async (): Promise<void> => {
    const deleted = await kubectl(['delete', '--ignore-not-found', '-f', '-'], rendered.stdout);
    if (deleted.code !== 0) throw new Error(`kubectl delete the finalizer policy: ${deleted.stderr}`);
  };
  // A policy takes effect once the API server's informers have it and its binding.
  const probe = JSON.stringify({
    apiVersion: 'ctfleet.io/v1alpha1',
    kind: 'ChallengeInstance',
    metadata: { name: 'finalizer-policy-probe', namespace: 'default' },
    spec: { team: 'probe', challenge: 'probe', image: 'probe:1', ports: [{ name: 'http', containerPort: 8080 }] },
  });
  const began = Date.now();
  for (;;) {
    const dry = await kubectl(['create', '--dry-run=server', '-o', 'jsonpath={.metadata.finalizers}', '-f', '-'], probe);
    if (dry.code === 0 && dry.stdout.includes(FINALIZER)) return { version, remove };
    if (Date.now() - began > 60_000) {
      await remove();
      throw new Error(`the finalizer policy did not take effect within 60 s (last dry run: ${dry.stdout}${dry.stderr})`);
    }
    await sleep(200);
  }
}
