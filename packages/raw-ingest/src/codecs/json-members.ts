/**
 * @file Streams the members of a JSON object file one at a time, with the line each member's
 * key is on and its ordinal, so a file of millions of entries is never held whole. The tokens
 * come from stream-json's tokenizer; each member value is put together by its Assembler, one at
 * a time, so memory is one member, not the file.
 *
 * Two shapes (both P9D's): a flat object `{id: value, ...}`, and with `groups` an object of
 * groups `{group: {id: value, ...}, ...}` (P9D's train.json is grouped by domain). A top-level
 * member is a group when its value is an object whose first member's value is an object;
 * otherwise it is a member itself. The two shapes may mix in one file.
 *
 * Lines are counted by feeding the tokenizer the text one line-piece at a time: a key token is
 * emitted while the piece holding its closing quote is fed, so its line is exact. A syntax error
 * (or invalid UTF-8) ends the stream with one {@link JsonSyntaxError} event at the line and
 * ordinal where reading stopped; the members before it were already handed out.
 */
import type { Readable } from 'node:stream';
import Assembler from 'stream-json/assembler.js';
import { jsonParser, type Token } from 'stream-json/parser.js';
import { getManyValues, isMany, none } from 'stream-chain/defs.js';

/** One member: `key` and its `value`, and the group it sits in when the file is grouped. */
export interface JsonMember {
  kind: 'member';
  group?: string;
  key: string;
  value: unknown;
  /** Line of the member's key (1-based). */
  line: number;
  /** Ordinal of the member among all members handed out (1-based; groups are not counted). */
  entry: number;
}

/** Reading stopped: not JSON from here on. */
export interface JsonSyntaxError {
  kind: 'syntax-error';
  line: number;
  /** The ordinal the next member would have had. */
  entry: number;
  message: string;
}

export type JsonMemberEvent = JsonMember | JsonSyntaxError;

/**
 * Streams the members of the JSON object in `input`.
 * @example for await (const m of streamJsonMembers(createReadStream('train.json'), { groups: true })) ...
 */
export async function* streamJsonMembers(input: Readable, opts: { groups: boolean }): AsyncGenerator<JsonMemberEvent> {
  const members = new MemberMachine(opts.groups);
  const tokenize = jsonParser({ packValues: true, streamValues: false });
  const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });
  let line = 1;
  const feed = function* (text: string): Generator<JsonMember> {
    let start = 0;
    for (let nl = text.indexOf('\n'); ; nl = text.indexOf('\n', start)) {
      const piece = nl === -1 ? text.slice(start) : text.slice(start, nl + 1);
      if (piece !== '') yield* members.push(tokensOf(tokenize(piece)), line);
      if (nl === -1) break;
      line++;
      start = nl + 1;
    }
  };
  try {
    for await (const chunk of input as AsyncIterable<Buffer>) yield* feed(decoder.decode(chunk, { stream: true }));
    yield* feed(decoder.decode());
    // Flushing: stream-chain's protocol passes `none` to say the input ended.
    yield* members.push(tokensOf((tokenize as unknown as (end: typeof none) => unknown)(none)), line);
    members.end();
  } catch (e) {
    // A system error (the file could not be read) is not the data's fault: let the caller report it.
    if ((e as NodeJS.ErrnoException).code !== undefined && !(e instanceof TypeError)) throw e;
    const message = e instanceof TypeError ? `invalid UTF-8 (${e.message})` : (e as Error).message;
    yield { kind: 'syntax-error', line, entry: members.entry + 1, message };
  }
}

function tokensOf(out: unknown): readonly Token[] {
  if (out === none) return [];
  if (isMany(out)) return getManyValues(out) as Token[];
  return [out as Token];
}

/** The state machine from tokens to members. */
class MemberMachine {
  entry = 0;
  private state: 'start' | 'top-key' | 'top-value' | 'peek-key' | 'peek-value' | 'group-key' | 'group-value' | 'value' | 'done' = 'start';
  private asm: Assembler | undefined;
  private topKey = '';
  private key = '';
  private group: string | undefined;
  private line = 0;
  private peekLine = 0;
  /** Tokens held while deciding whether a top-level value is a group. */
  private held: Token[] = [];

  constructor(private readonly groups: boolean) {}

  *push(tokens: readonly Token[], line: number): Generator<JsonMember> {
    for (const t of tokens) {
      const m = this.step(t, line);
      if (m) yield m;
    }
  }

  end(): void {
    if (this.state !== 'done') throw new Error('JSON ends before the top-level object is closed');
  }

  private step(t: Token, line: number): JsonMember | undefined {
    switch (this.state) {
      case 'start':
        if (t.name !== 'startObject') throw new Error(`not a JSON object: the file starts with ${t.name}`);
        this.state = 'top-key';
        return undefined;
      case 'top-key':
        if (t.name === 'endObject') {
          this.state = 'done';
          return undefined;
        }
        this.topKey = (t as { value: string }).value;
        this.line = line;
        this.state = 'top-value';
        return undefined;
      case 'top-value':
        if (this.groups && t.name === 'startObject') {
          this.held = [t];
          this.state = 'peek-key';
          return undefined;
        }
        this.group = undefined;
        return this.startValue(this.topKey, this.line, t, 'top-key');
      case 'peek-key':
        if (t.name === 'endObject') {
          // `{}`: an (empty) member, not a group.
          this.group = undefined;
          return this.startValue(this.topKey, this.line, ...this.held, t, 'top-key');
        }
        this.held.push(t);
        this.key = (t as { value: string }).value;
        this.peekLine = line;
        this.state = 'peek-value';
        return undefined;
      case 'peek-value':
        if (t.name === 'startObject') {
          this.group = this.topKey;
          this.held = [];
          return this.startValue(this.key, this.peekLine, t, 'group-key');
        }
        this.group = undefined;
        return this.startValue(this.topKey, this.line, ...this.held, t, 'top-key');
      case 'group-key':
        if (t.name === 'endObject') {
          this.state = 'top-key';
          return undefined;
        }
        this.key = (t as { value: string }).value;
        this.line = line;
        this.state = 'group-value';
        return undefined;
      case 'group-value':
        return this.startValue(this.key, this.line, t, 'group-key');
      case 'value':
        return this.feedValue(t);
      case 'done':
        throw new Error(`unexpected ${t.name} after the top-level object`);
    }
  }

  private after: 'top-key' | 'group-key' = 'top-key';

  /** Starts assembling a member's value from its first token(s); the last argument says where to go after it. */
  private startValue(key: string, line: number, ...rest: [...Token[], 'top-key' | 'group-key']): JsonMember | undefined {
    const after = rest.pop() as 'top-key' | 'group-key';
    this.key = key;
    this.line = line;
    this.after = after;
    this.asm = new Assembler();
    this.state = 'value';
    let out: JsonMember | undefined;
    for (const tok of rest as Token[]) out = this.feedValue(tok) ?? out;
    return out;
  }

  private feedValue(t: Token): JsonMember | undefined {
    this.asm!.consume(t);
    if (!this.asm!.done) return undefined;
    const value = this.asm!.current;
    this.asm = undefined;
    this.state = this.after;
    this.entry++;
    return { kind: 'member', ...(this.group !== undefined ? { group: this.group } : {}), key: this.key, value, line: this.line, entry: this.entry };
  }
}
