import { X509Certificate } from 'node:crypto'

export interface TestCertificate {
  /** PEM private key. */
  key: string
  /** PEM certificate. */
  cert: string
  /** SHA-256 fingerprint as `AA:BB:…`, the form Proxmox and browsers show. */
  fingerprint256: string
}

/**
 * A fresh self-signed certificate for a simulator listening on loopback: EC P-256, valid for
 * `localhost`, `127.0.0.1` and `::1`, generated at start so nothing secret is ever committed.
 *
 * It needs the `selfsigned` package, an optional peer dependency (`npm i -D selfsigned`) loaded only
 * here, so a runtime install of `@panelkit/core` does not carry it.
 */
export async function generateTestCertificate(commonName = 'localhost'): Promise<TestCertificate> {
  let generate: typeof import('selfsigned').generate
  try {
    ;({ generate } = await import('selfsigned'))
  } catch (error) {
    throw new Error(
      'generateTestCertificate needs the selfsigned package (an optional peer dependency of @panelkit/core): npm i -D selfsigned',
      { cause: error },
    )
  }
  const notBeforeDate = new Date(Date.now() - 60_000)
  const pems = await generate([{ name: 'commonName', value: commonName }], {
    keyType: 'ec',
    algorithm: 'sha256',
    notBeforeDate,
    notAfterDate: new Date(notBeforeDate.getTime() + 7 * 24 * 3600 * 1000),
    extensions: [
      { name: 'basicConstraints', cA: true },
      { name: 'keyUsage', digitalSignature: true, keyCertSign: true, keyEncipherment: true },
      { name: 'extKeyUsage', serverAuth: true },
      {
        name: 'subjectAltName',
        altNames: [
          { type: 2, value: 'localhost' },
          { type: 2, value: commonName },
          { type: 7, ip: '127.0.0.1' },
          { type: 7, ip: '::1' },
        ],
      },
    ],
  })
  const fingerprint256 = new X509Certificate(pems.cert).fingerprint256
  return { key: pems.private, cert: pems.cert, fingerprint256 }
}
