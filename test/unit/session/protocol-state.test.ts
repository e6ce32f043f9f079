import { describe, expect, it } from 'vitest';
import { Backend } from '../../../src/protocol/codes.js';
import { ProtocolState } from '../../../src/session/protocol-state.js';

const text = (query: string, generation = 0) => ({ query, parameterTypes: [], generation });
const I = 0x49;
const T = 0x54;

describe('ProtocolState', () => {
  it('records a statement only when its ParseComplete arrives', () => {
    const p = new ProtocolState();
    p.sentParse('s1', text('SELECT 1'));
    p.sentSync();
    expect(p.prepared.has('s1')).toBe(false);
    expect(p.statement('s1')).toEqual({ pending: true, texts: [text('SELECT 1')] });
    expect(p.idle).toBe(false);
    expect(p.reply(Backend.ParseComplete)).toBe(false);
    expect(p.prepared.get('s1')).toEqual(text('SELECT 1'));
    p.reply(Backend.ReadyForQuery, I);
    expect(p.idle).toBe(true);
    expect(p.statement('s1')).toEqual({ pending: false, texts: [text('SELECT 1')] });
  });

  it('after an error, drops everything up to the Sync: skipped Parses, Closes and Queries take no effect', () => {
    const p = new ProtocolState();
    p.sentParse('', text('SELECT secret'));
    p.sentParse('keep', text('SELECT 2'));
    p.sentSync();
    p.reply(Backend.ParseComplete);
    p.reply(Backend.ParseComplete);
    p.reply(Backend.ReadyForQuery, I);
    // A failing Parse, then a Parse and a Close of existing names and a Query, all skipped.
    p.sentParse('zz', undefined);
    p.sentParse('', text('SELECT 1'));
    p.sentClose('keep');
    p.sentQuery();
    p.sentSync();
    p.reply(Backend.ErrorResponse);
    p.reply(Backend.ReadyForQuery, I);
    expect(p.idle).toBe(true);
    expect(p.prepared.get('')).toEqual(text('SELECT secret'));
    expect(p.prepared.has('keep')).toBe(true);
  });

  it('a simple Query drops the unnamed statement once it ran, and a failed Parse of it drops it too', () => {
    const p = new ProtocolState();
    p.sentParse('', text('SELECT 1'));
    p.sentSync();
    p.reply(Backend.ParseComplete);
    p.reply(Backend.ReadyForQuery, I);
    p.sentQuery();
    p.reply(Backend.RowDescription);
    p.reply(Backend.CommandComplete);
    expect(p.prepared.has('')).toBe(true);
    p.reply(Backend.ReadyForQuery, I);
    expect(p.prepared.has('')).toBe(false);

    p.sentParse('', text('SELECT 2'));
    p.sentSync();
    p.reply(Backend.ParseComplete);
    p.reply(Backend.ReadyForQuery, I);
    p.sentParse('', text('SELEC'));
    p.sentSync();
    p.reply(Backend.ErrorResponse);
    p.reply(Backend.ReadyForQuery, I);
    expect(p.prepared.has('')).toBe(false);
  });

  it('forgets a statement on CloseComplete, and drops the replies of messages pgward inserted', () => {
    const p = new ProtocolState();
    p.sentParse('s', text('SELECT 1'));
    p.sentSync();
    p.reply(Backend.ParseComplete);
    p.reply(Backend.ReadyForQuery, I);
    p.sentClose('s', true);
    p.sentParse('s', text('SELECT 1', 1), true);
    p.sentBind('', 1);
    p.sentExecute();
    p.sentSync();
    expect(p.reply(Backend.CloseComplete)).toBe(true);
    expect(p.prepared.has('s')).toBe(false);
    expect(p.reply(Backend.ParseComplete)).toBe(true);
    expect(p.prepared.get('s')?.generation).toBe(1);
    expect(p.reply(Backend.BindComplete)).toBe(false);
    expect(p.reply(Backend.CommandComplete)).toBe(false);
    p.reply(Backend.ReadyForQuery, I);
    expect(p.idle).toBe(true);
  });

  it('tells succeeded Binds with the generation they were sent under; Describe and Execute end on their replies', () => {
    const p = new ProtocolState();
    const bound: string[] = [];
    p.onBound = (portal, generation) => bound.push(`${portal}@${generation}`);
    p.sentBind('p1', 3);
    p.sentDescribe();
    p.sentExecute();
    p.sentBind(undefined, 3);
    p.sentExecute();
    p.sentSync();
    p.reply(Backend.BindComplete);
    p.reply(Backend.NoData);
    p.reply(Backend.PortalSuspended);
    p.reply(Backend.BindComplete);
    p.reply(Backend.EmptyQueryResponse);
    expect(p.reply(Backend.ReadyForQuery, T)).toBe(false);
    expect(bound).toEqual(['p1@3']);
    expect(p.idle).toBe(true);
    expect(p.transactionStatus).toBe(T);
  });

  it('an error at Sync (a failed commit) keeps the Sync for its ReadyForQuery', () => {
    const p = new ProtocolState();
    p.sentExecute();
    p.sentSync();
    p.reply(Backend.CommandComplete);
    p.reply(Backend.ErrorResponse);
    p.reply(Backend.ReadyForQuery, I);
    expect(p.idle).toBe(true);
    expect(p.lost).toBe(false);
  });

  it('the batch is open from the first extended message to the Sync', () => {
    const p = new ProtocolState();
    expect(p.batchOpen).toBe(false);
    p.sentBind(undefined, 0);
    expect(p.batchOpen).toBe(true);
    p.sentSync();
    expect(p.batchOpen).toBe(false);
  });

  it('a reply that matches nothing sent loses track for good', () => {
    const p = new ProtocolState();
    p.reply(Backend.BindComplete);
    expect(p.lost).toBe(true);
    expect(p.idle).toBe(false);
    p.sentParse('s', text('SELECT 1'));
    expect(p.reply(Backend.ParseComplete)).toBe(false);
    expect(p.prepared.size).toBe(0);
  });

  it('loses track rather than keep more statement text than its limit', () => {
    const p = new ProtocolState();
    const big = 'x'.repeat(1024 * 1024);
    for (let i = 0; i < 5; i++) {
      p.sentParse(`s${i}`, text(big));
      p.reply(Backend.ParseComplete);
    }
    expect(p.lost).toBe(true);
    expect(p.prepared.size).toBe(4);
  });

  it('a Parse in an earlier batch of the pipeline may fail: the statement it replaces stays a candidate', () => {
    const p = new ProtocolState();
    p.sentParse('s', text('SELECT old', 0));
    p.sentSync();
    p.reply(Backend.ParseComplete);
    p.reply(Backend.ReadyForQuery, I);
    p.sentParse('s', text('SELECT new', 1));
    expect(p.statement('s')).toEqual({ pending: true, texts: [text('SELECT new', 1)] });
    p.sentSync();
    expect(p.statement('s')).toEqual({ pending: true, texts: [text('SELECT new', 1), text('SELECT old', 0)] });
    p.sentClose('s');
    expect(p.statement('s')).toEqual({ pending: true, texts: [] });
  });

  it('requests sent after an error was answered, before the Sync, are discarded by the server: not awaited', () => {
    const p = new ProtocolState();
    p.sentParse('zz', undefined);
    p.reply(Backend.ErrorResponse);
    expect(p.idle).toBe(false);
    p.sentBind(undefined, 0);
    p.sentExecute();
    p.sentSync();
    p.reply(Backend.ReadyForQuery, I);
    expect(p.idle).toBe(true);
    expect(p.lost).toBe(false);
  });

  it('Syncs sent during COPY FROM STDIN, before CopyDone, get no ReadyForQuery', () => {
    const p = new ProtocolState();
    p.sentParse('', text('COPY t FROM STDIN'));
    p.sentBind(undefined, 0);
    p.sentExecute();
    p.sentSync(); // sent before the server started the COPY: ignored by it
    p.reply(Backend.ParseComplete);
    p.reply(Backend.BindComplete);
    p.reply(Backend.CopyInResponse);
    p.sentSync(); // during the COPY: ignored too
    p.sentCopyEnd();
    p.sentSync();
    p.reply(Backend.CommandComplete);
    p.reply(Backend.ReadyForQuery, I);
    expect(p.idle).toBe(true);
    expect(p.lost).toBe(false);
  });

  it('DEALLOCATE ALL or DISCARD ALL leaves no named statement, and the unnamed one as it was', () => {
    const p = new ProtocolState();
    p.sentParse('s', text('SELECT 1'));
    p.sentParse('', text('SELECT 2'));
    p.reply(Backend.ParseComplete);
    p.reply(Backend.ParseComplete);
    p.forgetNamed();
    expect(p.statement('s')).toEqual({ pending: false, texts: [] });
    expect(p.statement('')).toEqual({ pending: false, texts: [text('SELECT 2')] });
  });

  it('stays cheap and correct over a deep pipeline', () => {
    const p = new ProtocolState();
    for (let i = 0; i < 20_000; i++) {
      p.sentBind(undefined, 0);
      p.sentExecute();
      p.sentSync();
    }
    for (let i = 0; i < 20_000; i++) {
      p.reply(Backend.BindComplete);
      p.reply(Backend.CommandComplete);
      p.reply(Backend.ReadyForQuery, I);
    }
    expect(p.idle).toBe(true);
    expect(p.lost).toBe(false);
  });
});
