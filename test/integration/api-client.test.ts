import assert from 'node:assert/strict';
import tls from 'node:tls';
import { after, describe, test } from 'node:test';
import { ApiException, CoreV1Api, CustomObjectsApi, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { identifyAs, makePooledApiClient } from '../../src/adapters/kubernetes/api-client.ts';
import { loadKubeConfig } from '../../src/adapters/kubernetes/kube-config.ts';
import { stackConfig } from '../support/stack.ts';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

// The process's connection pool (API_IDLE_TIMEOUT_MS, 30 s) to the stack's real API server: its TLS
// connections kept across pauses longer than undici's default idle timeout (4 s),
// shared by every API class, with the process's User-Agent. HTTP/1.1: one
// request at a time on a connection, so requests at once open one each.
describe('the pooled API client', () => {
  const connect = tls.connect;
  let connects = 0;
  const opened = (): number => connects;
  after(() => {
    tls.connect = connect;
  });

  test('keeps its TLS connections across API classes and a pause of 5 s', async () => {
    // Counts the TLS connections undici opens (its connector calls tls.connect).
    tls.connect = ((...args: Parameters<typeof tls.connect>) => {
      connects += 1;
      return connect(...args);
    }) as typeof tls.connect;
    const kubeConfig = loadKubeConfig(stackConfig().kubeconfigPath);
    identifyAs('api-client-test');
    const custom = makePooledApiClient(kubeConfig, CustomObjectsApi);
    const core = makePooledApiClient(kubeConfig, CoreV1Api);
    const list = (): Promise<unknown> => custom.listClusterCustomObject({ group: 'ctfleet.io', version: 'v1alpha1', plural: 'challengeinstances', limit: 1 });

    await list();
    assert.equal(connects, 1, 'the first request opens one connection');
    // Back in the pool once its answer is read and undici has seen the exchange end.
    await sleep(100);
    await core.readNamespace({ name: 'default' });
    assert.equal(connects, 1, 'another API class reuses it');
    await Promise.all([list(), list(), core.readNamespace({ name: 'default' })]);
    // (Read through a function: the assertions above narrowed `connects` to 1 for the type checker.)
    const open = opened();
    assert.ok(open <= 4, `${open} TLS connections: more than one new connection a request for three at once`);
    await sleep(5_000);
    const namespace = await core.readNamespace({ name: 'default' });
    await list();
    assert.equal(namespace.metadata?.name, 'default');
    assert.equal(connects, open, `${connects - open} new TLS connections: a request after a 5 s pause did not reuse a kept one`);
  });

  // Requests go out with undici's request, not fetch: what client-node makes of the answers must not change.
  test('hands client-node the status, headers and body of every answer', async () => {
    const kubeConfig = loadKubeConfig(stackConfig().kubeconfigPath);
    const core = makePooledApiClient(kubeConfig, CoreV1Api);
    const name = `api-client-${Date.now().toString(36)}`;
    const made = await core.createNamespace({ body: { metadata: { name, labels: { 'ctfleet.io/test': 'api-client' } } } });
    try {
      assert.equal(made.metadata?.name, name);
      const patched = await core.patchNamespace({ name, body: { metadata: { labels: { 'ctfleet.io/patched': 'yes' } } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
      assert.equal(patched.metadata?.labels?.['ctfleet.io/patched'], 'yes', 'a PATCH carries its body');
      const missing = await core.readNamespace({ name: `${name}-missing` }).then(() => undefined, (error: unknown) => error);
      assert.ok(missing instanceof ApiException, `a missing object is client-node's ApiException, not ${String(missing)}`);
      assert.equal(missing.code, 404);
      assert.match(String(missing.body), /not found/, 'the error carries the API server\'s Status body');
      assert.equal(missing.headers['content-type'], 'application/json');
    } finally {
      await core.deleteNamespace({ name });
    }
  });
});
