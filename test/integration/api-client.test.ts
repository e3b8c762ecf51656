import assert from 'node:assert/strict';
import tls from 'node:tls';
import { after, describe, test } from 'node:test';
import { CoreV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import { identifyAs, makePooledApiClient } from '../../src/adapters/kubernetes/api-client.ts';
import { loadKubeConfig } from '../../src/adapters/kubernetes/kube-config.ts';
import { stackConfig } from '../support/stack.ts';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

// The process's connection pool (API_IDLE_TIMEOUT_MS, 30 s) to the stack's real API server: one TLS
// connection, kept across pauses longer than undici's default idle timeout (4 s),
// shared by every API class, with the process's User-Agent.
describe('the pooled API client', () => {
  const connect = tls.connect;
  let connects = 0;
  after(() => {
    tls.connect = connect;
  });

  test('keeps one TLS connection across API classes and a pause of 5 s', async () => {
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
    await Promise.all([list(), list(), core.readNamespace({ name: 'default' })]);
    await sleep(5_000);
    const namespace = await core.readNamespace({ name: 'default' });
    await list();
    assert.equal(namespace.metadata?.name, 'default');
    assert.equal(connects, 1, `${connects} TLS connections: a request after a 5 s pause opened a new one`);
  });
});
