import { identifier, secret, value } from '../protocol/encoder.ts'
import { parseTable } from '../protocol/output.ts'
import { shortList } from './domains.ts'
import { type CliScript, replyAt, step } from './script.ts'

/** Account classes, mailing lists and groups of a domain. */

const enterDomain = (domain: string) =>
  step('domain', 'UPDATE', 'Domain', 'name', identifier(domain, 'domain'))

function names(domain: string, what: 'AccountClasses' | 'Lists' | 'Groups'): CliScript<string[]> {
  return {
    action: `LIST ${what}`,
    access: 'read',
    target: domain,
    steps: [enterDomain(domain), step('domain', 'LIST', what), step('', 'BACK')],
    parse: (r) => parseTable(replyAt(r, 1).lines).cells.map((c) => c[0] ?? ''),
  }
}

function removeFrom(domain: string, kind: 'accountClass' | 'List' | 'Group', name: string): CliScript<void> {
  return {
    action: `REMOVE ${kind}`,
    access: 'write',
    target: `${name}@${domain}`,
    steps: [
      enterDomain(domain),
      step('domain', 'REMOVE', kind, 'name', value(name, kind)),
      step('', 'COMMIT'),
    ],
    parse: () => undefined,
  }
}

export interface ListMember {
  email: string
  name: string
}

export const classCommands = {
  list: (domain: string) => names(domain, 'AccountClasses'),
  add(domain: string, name: string): CliScript<void> {
    return {
      action: 'ADD accountClass',
      access: 'write',
      target: `${name}@${domain}`,
      steps: [
        enterDomain(domain),
        step('domain-accountclass', 'ADD', 'accountClass', 'name', value(name, 'accountClass')),
        step('domain', 'COMMIT'),
        step('', 'COMMIT'),
      ],
      parse: () => undefined,
    }
  },
  remove: (domain: string, name: string) => removeFrom(domain, 'accountClass', name),
}

export const mailingListCommands = {
  list: (domain: string) => names(domain, 'Lists'),
  add(domain: string, input: { name: string; password: string; adminEmail: string }): CliScript<void> {
    return {
      action: 'ADD List',
      access: 'write',
      target: `${input.name}@${domain}`,
      steps: [
        enterDomain(domain),
        step(
          'domain-list',
          'ADD',
          'List',
          'name',
          identifier(input.name, 'list'),
          'password',
          secret(input.password, 'password'),
          'adminEmail',
          value(input.adminEmail, 'adminEmail'),
        ),
        step('domain', 'COMMIT'),
        step('', 'COMMIT'),
      ],
      parse: () => undefined,
    }
  },
  remove: (domain: string, name: string) => removeFrom(domain, 'List', name),
  addMember(domain: string, listName: string, member: ListMember): CliScript<void> {
    return {
      action: 'ADD User',
      access: 'write',
      target: `${listName}@${domain}`,
      steps: [
        enterDomain(domain),
        step('domain-list', 'UPDATE', 'List', 'name', identifier(listName, 'list')),
        step(
          'domain-list',
          'ADD',
          'User',
          'email',
          value(member.email, 'email'),
          'name',
          value(member.name, 'name'),
        ),
        step('domain', 'COMMIT'),
        step('', 'COMMIT'),
      ],
      parse: () => undefined,
    }
  },
  removeMember(domain: string, listName: string, email: string): CliScript<void> {
    return {
      action: 'REMOVE User',
      access: 'write',
      target: `${listName}@${domain}`,
      steps: [
        enterDomain(domain),
        step('domain-list', 'UPDATE', 'List', 'name', identifier(listName, 'list')),
        step('domain-list', 'REMOVE', 'User', 'email', value(email, 'email')),
        step('domain', 'COMMIT'),
        step('', 'COMMIT'),
      ],
      parse: () => undefined,
    }
  },
  /** Members: rows are `email | name` (a pipe table). */
  members(domain: string, listName: string): CliScript<ListMember[]> {
    return {
      action: 'LIST Users',
      access: 'read',
      target: `${listName}@${domain}`,
      steps: [
        enterDomain(domain),
        step('domain-list', 'UPDATE', 'List', 'name', identifier(listName, 'list')),
        step('domain-list', 'LIST', 'Users'),
        step('domain', 'BACK'),
        step('', 'BACK'),
      ],
      parse: (r) =>
        replyAt(r, 2)
          .lines.filter((l) => l.includes(' | ') && !/^\s*e-?mail\s*\|/i.test(l))
          .map((l) => {
            const [email = '', name = ''] = l.split(' | ')
            return { email: email.trim(), name: name.trim() }
          }),
    }
  },
}

export const groupCommands = {
  list: (domain: string) => names(domain, 'Groups'),
  add(domain: string, name: string, addresses: readonly string[] = []): CliScript<void> {
    return {
      action: 'ADD Group',
      access: 'write',
      target: `${name}@${domain}`,
      steps: [
        enterDomain(domain),
        step('domain-group', 'ADD', 'Group', 'name', identifier(name, 'group')),
        ...addresses.map((a) => step('domain-group', 'ADD', 'Address', value(a, 'address'))),
        step('domain', 'COMMIT'),
        step('', 'COMMIT'),
      ],
      parse: () => undefined,
    }
  },
  remove: (domain: string, name: string) => removeFrom(domain, 'Group', name),
  addAddress(domain: string, name: string, address: string): CliScript<void> {
    return {
      action: 'ADD Address',
      access: 'write',
      target: `${name}@${domain}`,
      steps: [
        enterDomain(domain),
        step('domain-group', 'UPDATE', 'Group', 'name', identifier(name, 'group')),
        step('domain-group', 'ADD', 'Address', value(address, 'address')),
        step('domain', 'COMMIT'),
        step('', 'COMMIT'),
      ],
      parse: () => undefined,
    }
  },
  removeAddress(domain: string, name: string, address: string): CliScript<void> {
    return {
      action: 'REMOVE Address',
      access: 'write',
      target: `${name}@${domain}`,
      steps: [
        enterDomain(domain),
        step('domain-group', 'UPDATE', 'Group', 'name', identifier(name, 'group')),
        step('domain-group', 'REMOVE', 'Address', value(address, 'address')),
        step('domain', 'COMMIT'),
        step('', 'COMMIT'),
      ],
      parse: () => undefined,
    }
  },
  addresses(domain: string, name: string): CliScript<string[]> {
    return {
      action: 'LIST Addresses',
      access: 'read',
      target: `${name}@${domain}`,
      steps: [
        enterDomain(domain),
        step('domain-group', 'UPDATE', 'Group', 'name', identifier(name, 'group')),
        step('domain-group', 'LIST', 'Addresses'),
        step('domain', 'BACK'),
        step('', 'BACK'),
      ],
      parse: (r) => shortList(replyAt(r, 2).lines),
    }
  },
}
