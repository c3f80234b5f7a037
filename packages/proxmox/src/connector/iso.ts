/**
 * ISO images grouped for the client's picker by the part of the file name before the first `-`
 * (`Debian-12.5.0-amd64-netinst.iso` → `Debian`); a name without a dash goes to `OTHER`. Seed 003
 * contradicts itself on `proxmox-ve_8.1-2.iso` (it names both `proxmox` and `OTHER`); the rule as
 * stated — first dash — gives `proxmox`, and that is what this does.
 */
export const OTHER_GROUP = 'OTHER'

export function isoGroup(fileName: string): string {
  const dash = fileName.indexOf('-')
  return dash > 0 ? fileName.slice(0, dash) : OTHER_GROUP
}

export interface IsoImage {
  volid: string
  name: string
  size?: number
}

export function groupIsos(images: readonly IsoImage[]): Record<string, IsoImage[]> {
  const groups: Record<string, IsoImage[]> = {}
  for (const image of [...images].sort((a, b) => a.name.localeCompare(b.name))) {
    const group = isoGroup(image.name)
    groups[group] = [...(groups[group] ?? []), image]
  }
  return groups
}
