import { CRLF, formatPrompt } from './framer.ts'

/** What the simulator writes for one reply: output lines, the status line, then the prompt. */
export function encodeReply(
  lines: readonly string[],
  status: { ok: boolean; text: string } | undefined,
  prompt: readonly string[] | 'login' | 'password',
): string {
  let out = ''
  for (const l of lines) out += l + CRLF
  if (status) out += `${status.ok ? '+OK' : '-ERR'}: ${status.text}${CRLF}`
  return out + formatPrompt(prompt)
}
