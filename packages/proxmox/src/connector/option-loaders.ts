import type { CallRecorder, OptionChoice, OptionLoader, Server } from '@panelkit/core'
import type { ProxmoxClient } from '../client.ts'
import { toBoolean } from '../encoding.ts'
import type { ClusterResource } from '../endpoints/types.ts'
import type { kvmSettings } from './settings.ts'

/** Opens a client for one loader call (recording into the loader's recorder) and closes it after. */
export type LoaderClient = <T>(
  server: Server,
  calls: CallRecorder,
  use: (client: ProxmoxClient) => Promise<T>,
) => Promise<T>

const contentOf = (row: ClusterResource) => String(row.content ?? '').split(',')

/**
 * Storages with a content type, on the node the admin picked so far (every node while placement is
 * automatic, listing only storages that all of them could use once).
 */
function storages(rows: ClusterResource[], content: string, node: unknown): OptionChoice[] {
  const pinned = typeof node === 'string' && node !== '' && node !== 'auto' ? node : undefined
  const seen = new Map<string, OptionChoice>()
  for (const row of rows) {
    if (row.type !== 'storage' || !row.storage || !contentOf(row).includes(content)) continue
    if (pinned && row.node !== pinned) continue
    if (seen.has(row.storage)) continue
    // PVE sends 1; proxies and older versions send "1" or true: all mean yes.
    const shared = toBoolean(row.shared)
    seen.set(row.storage, {
      value: row.storage,
      label: `${row.storage} (${row.plugintype ?? 'storage'}${shared ? ', shared' : pinned ? '' : `, on ${row.node}`})`,
    })
  }
  return [...seen.values()].sort((a, b) => a.value.localeCompare(b.value))
}

/** The settings with dropdown loaders that read the cluster (nodes, templates, storages). */
export function withOptionLoaders(spec: typeof kvmSettings, open: LoaderClient): typeof kvmSettings {
  const resources = (server: Server, calls: CallRecorder, signal: AbortSignal) =>
    open(server, calls, (client) => client.api.clusterResources({}, { signal }))
  const loader =
    (pick: (rows: ClusterResource[], settings: Record<string, unknown>) => OptionChoice[]): OptionLoader =>
    async ({ server, calls, signal, settings }) =>
      pick(await resources(server, calls, signal), settings)
  return {
    ...spec,
    node: {
      ...spec.node,
      loader: loader((rows) => [
        { value: 'auto', label: 'Automatic (most free memory that fits)' },
        ...rows
          .filter((r) => r.type === 'node' && r.node && r.status !== 'offline')
          .map((r) => ({ value: r.node as string, label: r.node as string }))
          .sort((a, b) => a.value.localeCompare(b.value)),
      ]),
    },
    template: {
      ...spec.template,
      loader: loader((rows) =>
        rows
          .filter((r) => r.type === 'qemu' && toBoolean(r.template))
          .map((r) => ({ value: String(r.vmid), label: `${r.name ?? 'template'} (${r.vmid} on ${r.node})` }))
          .sort((a, b) => Number(a.value) - Number(b.value)),
      ),
    },
    storage: { ...spec.storage, loader: loader((rows, s) => storages(rows, 'images', s.node)) },
    additionalDiskStorage: {
      ...spec.additionalDiskStorage,
      loader: loader((rows, s) => [
        { value: '', label: 'Same as the system disk' },
        ...storages(rows, 'images', s.node),
      ]),
    },
    backupStorage: { ...spec.backupStorage, loader: loader((rows, s) => storages(rows, 'backup', s.node)) },
    isoStorage: {
      ...spec.isoStorage,
      loader: loader((rows, s) => [
        { value: '', label: 'Every storage with ISO images' },
        ...storages(rows, 'iso', s.node),
      ]),
    },
  } as typeof kvmSettings
}
