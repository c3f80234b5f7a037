/**
 * Endpoint definitions: method, path, parameters (names and types, in the schema's own vocabulary)
 * and what the call returns. The TypeScript parameter types are derived from the same object, and a
 * test checks every definition against the official API schema, so the three cannot drift apart.
 */

export type ParamType = 'string' | 'integer' | 'number' | 'boolean' | 'array'

export interface ParamSpec {
  type: ParamType
  optional?: boolean
}

/** `upid`: a task id; `upid-or-null`: a task id, or null when it finished in time (or on older servers). */
export type ReturnKind = 'data' | 'null' | 'upid' | 'upid-or-null'

export interface EndpointDefinition<
  P extends Record<string, ParamSpec> = Record<string, ParamSpec>,
  R = unknown,
> {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE'
  /** The schema path: `/nodes/{node}/qemu/{vmid}/clone`. */
  path: string
  /** Every parameter, path parameters included (as in the schema); `net[n]` stands for net0…net31. */
  params: P
  returns: ReturnKind
  /**
   * Safe to send again after a network error left its fate unknown. GET always is; a POST that
   * creates something (clone, snapshot, backup) never is.
   */
  idempotent: boolean
  /**
   * For an idempotent endpoint: whether these parameters may be resent (a config write that
   * allocates a new volume may not). Absent: always.
   */
  repeatable?: (params: Record<string, unknown>) => boolean
  /** Module-log access class when it differs from the method (a login POST changes nothing remote). */
  access?: 'read' | 'write'
  /** Phantom: the shape of `data` in a successful answer. */
  readonly _result?: R
}

type TypeOf<S extends ParamSpec> = S['type'] extends 'integer' | 'number'
  ? number | string
  : S['type'] extends 'boolean'
    ? boolean
    : S['type'] extends 'array'
      ? readonly string[]
      : string

type WireKey<K> = K extends `${infer Base}[n]` ? `${Base}${number}` : K

type RequiredKeys<P> = { [K in keyof P]: P[K] extends { optional: true } ? never : K }[keyof P]
type OptionalKeys<P> = Exclude<keyof P, RequiredKeys<P>>

/** The parameter object of an endpoint, derived from its definition. */
export type ParamsOf<E> =
  E extends EndpointDefinition<infer P, unknown>
    ? { [K in RequiredKeys<P> as WireKey<K>]: TypeOf<P[K]> } & {
        [K in OptionalKeys<P> as WireKey<K>]?: TypeOf<P[K]> | undefined
      }
    : never

export type ResultOf<E> = E extends EndpointDefinition<Record<string, ParamSpec>, infer R> ? R : never

/** Curried so the result type is given explicitly and the parameter spec is inferred. */
export function endpoint<R>() {
  return <const P extends Record<string, ParamSpec>>(
    definition: Omit<EndpointDefinition<P, R>, '_result'>,
  ): EndpointDefinition<P, R> => definition
}

/** Names of the `{…}` segments of a path. */
export function pathParamNames(path: string): string[] {
  return [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1] as string)
}

/** The definition's spec for a wire key (`net3` → the `net[n]` spec). */
export function specFor(definition: EndpointDefinition, key: string): ParamSpec | undefined {
  const direct = definition.params[key]
  if (direct) return direct
  const m = /^([a-z]+)\d+$/.exec(key)
  return m ? definition.params[`${m[1]}[n]`] : undefined
}
