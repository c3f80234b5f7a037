/**
 * The byte pipe a session talks through. Sockets implement it; unit tests pass an in-memory pair, so
 * the session is tested without a network (the nats.js transport pattern).
 */
export interface Transport {
  write(data: string): void
  /** Registers the data handler (one per transport). */
  onData(handler: (chunk: Buffer) => void): void
  /** Called once when the pipe closes, with the error that closed it, if any. */
  onClose(handler: (error: Error | undefined) => void): void
  readonly closed: boolean
  /** Ends the pipe after pending writes. */
  end(): void
  /** Closes the pipe now. */
  destroy(): void
  /** Peer description for messages: `mail.example.com:7000 (TLS)`. */
  readonly description: string
}

export type TransportFactory = (signal?: AbortSignal) => Promise<Transport>
