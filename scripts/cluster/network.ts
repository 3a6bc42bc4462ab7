/**
 * The cluster's network (docs/cluster.md): one bridge in this machine's namespace holding the
 * cluster's private address (10.213.X.1/24, where the servers listen), and per host a network
 * namespace joined to the bridge by a veth pair (10.213.X.2, .3 …). Cutting a host's veth (its
 * root-side end down) cuts that host off the servers as a partition does. Every name carries a
 * short hash of the instance id, so two clusters on one machine never share one.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** The private range this project's clusters take their /24s from (10.213.0.0/16). */
export const CLUSTER_RANGE = '10.213';

export interface HostNet {
  /** Host letter: a, b, … */
  name: string;
  netns: string;
  /** The veth end in this machine's namespace (down: the host is cut off). */
  veth: string;
  address: string;
}

export interface ClusterNet {
  bridge: string;
  /** The servers' address: the bridge's, reachable from this machine and every host. */
  serverAddress: string;
  subnet: string;
  hosts: HostNet[];
}

async function ip(...args: string[]): Promise<string> {
  return (await run('ip', args)).stdout;
}

/** The names of an instance's network (none created). */
export function namesFor(instanceId: string, hostNames: readonly string[]) {
  const tag = createHash('sha256').update(instanceId).digest('hex').slice(0, 6);
  return {
    tag,
    // Linux interface names hold at most 15 characters.
    bridge: `hdb${tag}`,
    hosts: hostNames.map((name) => ({ name, netns: `hodei-${tag}-${name}`, veth: `hdv${tag}${name}` })),
  };
}

/** Removes what an earlier run of this instance left (its namespaces, veths and bridge). */
export async function removeNetwork(instanceId: string, hostNames: readonly string[]): Promise<void> {
  const names = namesFor(instanceId, hostNames);
  const namespaces = await ip('netns', 'list');
  for (const host of names.hosts) {
    // Deleting the namespace deletes its veth end, and so the pair.
    if (new RegExp(`^${host.netns}\\b`, 'm').test(namespaces)) await ip('netns', 'delete', host.netns);
    await ip('link', 'delete', host.veth).catch(() => undefined);
  }
  await ip('link', 'delete', names.bridge).catch(() => undefined);
}

/** The third octet of the instance's /24: from its hash, the next one free if that is in use. */
async function pickSubnet(tag: string): Promise<number> {
  const inUse = `${await ip('-4', '-o', 'addr', 'show')}\n${await ip('-4', 'route', 'show', 'table', 'all')}`;
  const first = parseInt(tag.slice(0, 2), 16);
  for (let i = 0; i < 256; i += 1) {
    const octet = (first + i) % 256;
    if (!inUse.includes(`${CLUSTER_RANGE}.${octet}.`)) return octet;
  }
  throw new Error(`every /24 of ${CLUSTER_RANGE}.0.0/16 is in use on this machine`);
}

/** Creates the bridge and one namespace per host (after removing a crashed run's leftovers). */
export async function createNetwork(instanceId: string, hostNames: readonly string[]): Promise<ClusterNet> {
  await removeNetwork(instanceId, hostNames);
  const names = namesFor(instanceId, hostNames);
  const octet = await pickSubnet(names.tag);
  const prefix = `${CLUSTER_RANGE}.${octet}`;
  const serverAddress = `${prefix}.1`;
  await ip('link', 'add', names.bridge, 'type', 'bridge');
  await ip('addr', 'add', `${serverAddress}/24`, 'dev', names.bridge);
  await ip('link', 'set', names.bridge, 'up');
  const hosts: HostNet[] = [];
  for (const [i, host] of names.hosts.entries()) {
    const address = `${prefix}.${i + 2}`;
    const peer = `${host.veth}p`;
    await ip('netns', 'add', host.netns);
    await ip('link', 'add', host.veth, 'type', 'veth', 'peer', 'name', peer);
    await ip('link', 'set', peer, 'netns', host.netns);
    await ip('link', 'set', host.veth, 'master', names.bridge);
    await ip('link', 'set', host.veth, 'up');
    const inNs = (...args: string[]) => ip('-n', host.netns, ...args);
    await inNs('link', 'set', 'lo', 'up');
    await inNs('link', 'set', peer, 'name', 'eth0');
    await inNs('addr', 'add', `${address}/24`, 'dev', 'eth0');
    await inNs('link', 'set', 'eth0', 'up');
    hosts.push({ name: host.name, netns: host.netns, veth: host.veth, address });
  }
  return { bridge: names.bridge, serverAddress, subnet: `${prefix}.0/24`, hosts };
}

/** Cuts a host off (`up: false`) or joins it again. */
export async function setLink(host: HostNet, up: boolean): Promise<void> {
  await ip('link', 'set', host.veth, up ? 'up' : 'down');
}
