import type Docker from 'dockerode';
import { CtfleetError, permanent, transient } from '../../domain/errors.ts';
import { ENGINE_DEFAULT_NETWORK } from '../../domain/isolation.ts';
import { LABELS, MANAGED_BY } from '../../domain/names.ts';
import type { NetworkDefinition, NetworkInfo, NetworkRuntime } from '../../domain/ports.ts';
import { dockerMessage, statusOf } from './docker-errors.ts';

/** {@link NetworkRuntime} over dockerode: the node's instance networks. */
export class DockerNetworks implements NetworkRuntime {
  private readonly docker: Docker;

  constructor(docker: Docker) {
    this.docker = docker;
  }

  async listManagedNetworks(): Promise<NetworkInfo[]> {
    try {
      const listed = await this.docker.listNetworks({ filters: { label: [`${LABELS.managedBy}=${MANAGED_BY}`] } });
      // A listing does not count attached containers; an inspect does.
      const inspected = await Promise.all(
        listed.map((network) =>
          this.docker
            .getNetwork(network.Id)
            .inspect()
            .then((info: { Containers?: Record<string, unknown> }) => Object.keys(info.Containers ?? {}).length)
            .catch((error: unknown) => {
              // Removed since the listing: not there any more.
              if (statusOf(error) === 404) return undefined;
              throw error;
            }),
        ),
      );
      return listed.flatMap((network, i) => {
        const containers = inspected[i];
        return containers === undefined ? [] : [{ id: network.Id, name: network.Name, labels: network.Labels ?? {}, containers }];
      });
    } catch (error) {
      throw transient('DockerUnavailable', `list networks: ${dockerMessage(error)}`, error);
    }
  }

  async createNetwork(definition: NetworkDefinition): Promise<void> {
    try {
      await this.docker.createNetwork({
        Name: definition.name,
        Driver: 'bridge',
        CheckDuplicate: true,
        Internal: false,
        Attachable: false,
        EnableIPv6: false,
        IPAM: { Driver: 'default', Config: [{ Subnet: definition.subnet }] },
        Options: {
          'com.docker.network.bridge.name': definition.bridge,
          // Docker drops traffic between two containers of the bridge.
          'com.docker.network.bridge.enable_icc': 'false',
          'com.docker.network.bridge.enable_ip_masquerade': String(definition.masquerade),
        },
        Labels: definition.labels,
      });
    } catch (error) {
      if (statusOf(error) === 409) return;
      throw transient('NetworkUnavailable', `create network ${definition.name} (${definition.subnet}): ${dockerMessage(error)}`, error);
    }
  }

  async inspectDefaultBridge(): Promise<{ bridge: string; containers: string[] }> {
    let info: { Options?: Record<string, string>; Containers?: Record<string, { Name?: string }> };
    try {
      info = await this.docker.getNetwork(ENGINE_DEFAULT_NETWORK).inspect();
    } catch (error) {
      if (statusOf(error) === 404) {
        throw permanent('NetworkUnavailable', `The Docker engine has no default bridge network (does dockerd run with --bridge=none?). Docker said: ${dockerMessage(error)}`, error);
      }
      throw transient('DockerUnavailable', `inspect network ${ENGINE_DEFAULT_NETWORK}: ${dockerMessage(error)}`, error);
    }
    // Goes into iptables rules: a Linux interface name, or nothing.
    const bridge = info.Options?.['com.docker.network.bridge.name'] ?? '';
    if (!/^[\w.-]{1,15}$/.test(bridge)) {
      throw permanent('NetworkUnavailable', `Docker's default bridge network names no usable Linux bridge (com.docker.network.bridge.name is ${JSON.stringify(bridge)})`);
    }
    const containers = Object.values(info.Containers ?? {}).flatMap((container) => (container.Name === undefined ? [] : [container.Name.replace(/^\//, '')]));
    return { bridge, containers };
  }

  async labelsOf(container: string): Promise<Record<string, string> | undefined> {
    try {
      return (await this.docker.getContainer(container).inspect()).Config.Labels;
    } catch (error) {
      if (statusOf(error) === 404) return undefined;
      throw transient('DockerUnavailable', `inspect container ${container}: ${dockerMessage(error)}`, error);
    }
  }

  async removeNetwork(id: string): Promise<void> {
    try {
      await this.docker.getNetwork(id).remove();
    } catch (error) {
      const status = statusOf(error);
      if (status === 404) return;
      if (status === 403 || /active endpoints/i.test(dockerMessage(error))) {
        throw new CtfleetError('NetworkInUse', 'conflict', `network ${id} still has containers: ${dockerMessage(error)}`, { cause: error });
      }
      throw transient('DockerUnavailable', `remove network ${id}: ${dockerMessage(error)}`, error);
    }
  }
}
