// CPU time of processes on this machine, read from /proc: what the benches use to split a run's CPU
// between its processes.
import { readdirSync, readFileSync } from 'node:fs'

const CLK_TCK = 100 // the kernel's USER_HZ for /proc times; 100 on Linux x86-64 and arm64

/** CPU seconds (user + system) of a live process, from /proc (clock ticks of the kernel's USER_HZ). */
export function procCpu(
  pid: number,
  withChildren = false,
  part: 'user' | 'system' | 'both' = 'both',
): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  // Fields after the command name (which may hold spaces) start with the state, field 3.
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  const user = Number(f[11]) + (withChildren ? Number(f[13]) : 0)
  const system = Number(f[12]) + (withChildren ? Number(f[14]) : 0)
  return (part === 'user' ? user : part === 'system' ? system : user + system) / CLK_TCK
}

/**
 * CPU seconds of a PostgreSQL server on this machine: the postmaster with the children it has reaped,
 * plus its live children (each connection's backend, the WAL writer, the checkpointer …). Undefined when
 * the server is not local (a PANELKIT_TEST_PG_URL elsewhere).
 */
export function pgCpu(postmaster: number | undefined): number | undefined {
  if (postmaster === undefined) return undefined
  let total = procCpu(postmaster, true)
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
      if (ppid === postmaster) total += procCpu(Number(entry))
    } catch {
      // the process ended while we looked
    }
  }
  return total
}

/**
 * Context switches of a live process, summed over its threads (/proc/<pid>/task/<tid>/status):
 * `voluntary` — it waited (a wake-up follows each), `involuntary` — the scheduler took the core from it
 * (preempted by another runnable process: a sign of more runnable work than cores).
 */
export function procSwitches(pid: number): { voluntary: number; involuntary: number } {
  const out = { voluntary: 0, involuntary: 0 }
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const status = readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8')
      out.voluntary += Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(status)?.[1] ?? 0)
      out.involuntary += Number(/^nonvoluntary_ctxt_switches:\s+(\d+)/m.exec(status)?.[1] ?? 0)
    } catch {
      // the thread ended while we looked
    }
  }
  return out
}
