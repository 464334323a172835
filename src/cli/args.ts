// args.ts: a small command-line parser, one command's argv against that command's spec.
// Why hand-written: the CLI needs positionals, `--flag value`, `--flag=value`, booleans and
// repeatable options, and nothing more; a dependency would be larger than this file.

export interface OptionSpec {
  /** A boolean is present or absent; a string takes one value. */
  kind: 'string' | 'boolean'
  /** A repeatable string option collects every value, in order. */
  repeatable?: boolean
  /** Shown in the help, e.g. `<multiaddr>`. */
  valueName?: string
  description: string
}

export interface CommandSpec {
  /** The full command as the user types it, e.g. `taskmesh submit`. */
  name: string
  /** One line per form, without the command name. */
  usage: string[]
  summary: string
  /** Positional names in order; a trailing `?` marks an optional one. */
  positionals: string[]
  /** Option names without the leading dashes. */
  options: Record<string, OptionSpec>
}

/** A mistake in how the command was typed: the CLI prints it with the usage and exits 2. */
export class UsageError extends Error {
  override name = 'UsageError'
  readonly usage: string
  constructor (message: string, usage: string) {
    super(message)
    this.usage = usage
  }
}

export class ParsedArgs {
  readonly positionals: string[]
  readonly help: boolean
  readonly #values: Map<string, string | string[] | true>
  readonly #spec: CommandSpec

  constructor (spec: CommandSpec, positionals: string[], values: Map<string, string | string[] | true>, help: boolean) {
    this.#spec = spec
    this.positionals = positionals
    this.#values = values
    this.help = help
  }

  /** The value of a single-valued string option, or undefined when absent. */
  string (name: string): string | undefined {
    this.#expect(name, 'string', false)
    const value = this.#values.get(name)
    return typeof value === 'string' ? value : undefined
  }

  /** Every value of a repeatable option, in the order given; [] when absent. */
  strings (name: string): string[] {
    this.#expect(name, 'string', true)
    const value = this.#values.get(name)
    return Array.isArray(value) ? value : []
  }

  flag (name: string): boolean {
    this.#expect(name, 'boolean', false)
    return this.#values.get(name) === true
  }

  /** A usage error for this command, e.g. for a value that parses but makes no sense. */
  error (message: string): UsageError {
    return new UsageError(message, usageText(this.#spec))
  }

  // Programmer error: the command's code asks for an option its spec does not declare.
  #expect (name: string, kind: OptionSpec['kind'], repeatable: boolean): void {
    const option = this.#spec.options[name]
    if (option === undefined || option.kind !== kind || (option.repeatable === true) !== repeatable) {
      throw new Error(`${this.#spec.name}: option --${name} is not declared as a ${repeatable ? 'repeatable ' : ''}${kind}`)
    }
  }
}

/**
 * Parses argv (the words after the command name). `-h`/`--help` anywhere before `--` asks
 * for help and skips every other check. `--` ends the options: what follows is positional.
 * A single-valued option given twice keeps the last value, so scripts can override a default.
 */
export function parseArgs (argv: readonly string[], spec: CommandSpec): ParsedArgs {
  const usage = usageText(spec)
  const usageError = (message: string): UsageError => new UsageError(message, usage)
  const positionals: string[] = []
  const values = new Map<string, string | string[] | true>()

  const endIndex = argv.indexOf('--')
  const optionWords = endIndex === -1 ? argv : argv.slice(0, endIndex)
  if (optionWords.includes('-h') || optionWords.includes('--help')) {
    return new ParsedArgs(spec, [], values, true)
  }

  for (let index = 0; index < argv.length; index++) {
    const word = argv[index]!
    if (word === '--') {
      positionals.push(...argv.slice(index + 1))
      break
    }
    if (!word.startsWith('-') || word === '-' || isNegativeNumber(word)) {
      positionals.push(word)
      continue
    }
    if (!word.startsWith('--')) throw usageError(`unknown option ${word} for '${spec.name}'`)

    const equalsIndex = word.indexOf('=')
    const name = word.slice(2, equalsIndex === -1 ? undefined : equalsIndex)
    const inlineValue = equalsIndex === -1 ? undefined : word.slice(equalsIndex + 1)
    const option = Object.hasOwn(spec.options, name) ? spec.options[name] : undefined
    if (option === undefined) throw usageError(`unknown option --${name} for '${spec.name}'`)

    if (option.kind === 'boolean') {
      if (inlineValue !== undefined) throw usageError(`option --${name} takes no value`)
      values.set(name, true)
      continue
    }

    let value = inlineValue
    if (value === undefined) {
      const next = argv[index + 1]
      if (next === undefined || (next.startsWith('--') && next.length > 2)) {
        throw usageError(`option --${name} needs a value${option.valueName === undefined ? '' : ` ${option.valueName}`}`)
      }
      value = next
      index++
    }
    if (option.repeatable === true) {
      const list = values.get(name)
      if (Array.isArray(list)) list.push(value)
      else values.set(name, [value])
    } else {
      values.set(name, value)
    }
  }

  const required = spec.positionals.filter(name => !name.endsWith('?'))
  if (positionals.length < required.length) {
    throw usageError(`missing <${required[positionals.length]}>`)
  }
  if (positionals.length > spec.positionals.length) {
    throw usageError(`unexpected argument '${positionals[spec.positionals.length]}'`)
  }
  return new ParsedArgs(spec, positionals, values, false)
}

function isNegativeNumber (word: string): boolean {
  return /^-\d+(\.\d+)?$/.test(word)
}

/** The usage lines alone: what a usage error prints under its message. */
export function usageText (spec: CommandSpec): string {
  const [first, ...rest] = spec.usage
  const lines = [`usage: ${spec.name} ${first ?? ''}`.trimEnd()]
  for (const form of rest) lines.push(`       ${spec.name} ${form}`.trimEnd())
  lines.push(`(see '${spec.name} --help')`)
  return lines.join('\n')
}

/** The full help of one command: usage, summary and every option. */
export function helpText (spec: CommandSpec): string {
  const lines = usageText(spec).split('\n').slice(0, -1)
  lines.push('', spec.summary)
  const rows: Array<[string, string]> = Object.entries(spec.options).map(([name, option]) => [
    `--${name}${option.kind === 'string' ? ` ${option.valueName ?? '<value>'}` : ''}`,
    option.description + (option.repeatable === true ? ' (repeatable)' : '')
  ])
  rows.push(['-h, --help', 'show this help'])
  const width = Math.max(...rows.map(([label]) => label.length))
  lines.push('', 'options:', ...rows.map(([label, description]) => `  ${label.padEnd(width)}  ${description}`))
  return lines.join('\n')
}

/** A whole number within [min, max], or null. */
export function parseInteger (text: string, min: number, max: number = Number.MAX_SAFE_INTEGER): number | null {
  if (!/^-?\d+$/.test(text.trim())) return null
  const value = Number(text)
  return Number.isSafeInteger(value) && value >= min && value <= max ? value : null
}
