/**
 * SIGTERM and SIGINT for long-running commands (worker, serve). The first signal asks for a graceful
 * stop: stop claiming, let running jobs finish up to a deadline, release leases, close the store, exit
 * 0. A second signal exits at once (128 + the signal's number), as an operator pressing Ctrl-C twice
 * or a supervisor that lost patience expects. Nothing is lost either way: jobs resume from their
 * checkpoints.
 */
export function onStopSignals(
  stop: (signal: NodeJS.Signals) => void,
  say: (line: string) => void,
  graceMs: number,
): () => void {
  let received = 0
  const handler = (signal: NodeJS.Signals) => {
    received++
    if (received === 1) {
      say(
        `${signal}: stopping — no new jobs; running jobs get up to ${Math.round(graceMs / 1000)} s to finish (send ${signal} again to exit at once)`,
      )
      stop(signal)
      return
    }
    say(`${signal} again: exiting now (unfinished jobs resume from their last checkpoint)`)
    process.exit(128 + (signal === 'SIGINT' ? 2 : 15))
  }
  process.on('SIGINT', handler)
  process.on('SIGTERM', handler)
  return () => {
    process.off('SIGINT', handler)
    process.off('SIGTERM', handler)
  }
}
