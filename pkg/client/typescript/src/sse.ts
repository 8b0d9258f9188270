/**
 * An incremental parser of the text/event-stream format (the WHATWG HTML "server-sent events"
 * interpretation rules), fed decoded text in chunks of any size: a line, a field or a CRLF may
 * be split anywhere between two chunks.
 */

/** One dispatched event. */
export interface SseEvent {
  /** The last event ID when the event was dispatched ("" when none was ever set). */
  id: string;
  /** The `event:` field, "message" when absent. */
  event: string;
  /** The `data:` lines joined with "\n". */
  data: string;
}

export interface SseParserCallbacks {
  onEvent(ev: SseEvent): void;
  /** A comment line (":" first), such as the agent's ": heartbeat". */
  onComment?(text: string): void;
  /** A `retry:` field: the server's reconnection time in milliseconds. */
  onRetry?(ms: number): void;
}

export class SseParser {
  private buf = "";
  private sawCR = false;
  private first = true;
  private data: string[] = [];
  private eventType = "";
  private lastIdBuffer = "";
  /** The last event ID string: what a reconnection sends as Last-Event-ID. */
  lastEventId = "";

  constructor(private readonly cb: SseParserCallbacks) {}

  /** Feeds decoded text; dispatches every event completed by it. */
  push(chunk: string): void {
    if (this.first && chunk.length > 0) {
      this.first = false;
      if (chunk.charCodeAt(0) === 0xfeff) chunk = chunk.slice(1);
    }
    let start = 0;
    for (let i = 0; i < chunk.length; i++) {
      const c = chunk.charCodeAt(i);
      if (c === 0x0a /* \n */) {
        if (this.sawCR && i === start && this.buf === "") {
          // The \n of a \r\n whose \r ended the previous line.
          this.sawCR = false;
          start = i + 1;
          continue;
        }
        this.sawCR = false;
        this.line(this.buf + chunk.slice(start, i));
        this.buf = "";
        start = i + 1;
      } else if (c === 0x0d /* \r */) {
        this.line(this.buf + chunk.slice(start, i));
        this.buf = "";
        this.sawCR = true;
        start = i + 1;
      } else if (this.sawCR) {
        this.sawCR = false;
      }
    }
    this.buf += chunk.slice(start);
  }

  /**
   * The stream ended: an event not yet terminated by a blank line is discarded, as the
   * specification says (the agent always ends events with a blank line).
   */
  end(): void {
    this.buf = "";
    this.sawCR = false;
    this.data = [];
    this.eventType = "";
  }

  private line(line: string): void {
    if (line === "") {
      this.dispatch();
      return;
    }
    if (line.charCodeAt(0) === 0x3a /* : */) {
      this.cb.onComment?.(line.slice(1).replace(/^ /, ""));
      return;
    }
    const colon = line.indexOf(":");
    let field: string;
    let value: string;
    if (colon === -1) {
      field = line;
      value = "";
    } else {
      field = line.slice(0, colon);
      value = line.slice(colon + 1);
      if (value.charCodeAt(0) === 0x20) value = value.slice(1);
    }
    switch (field) {
      case "event":
        this.eventType = value;
        break;
      case "data":
        this.data.push(value);
        break;
      case "id":
        if (!value.includes("\0")) this.lastIdBuffer = value;
        break;
      case "retry":
        if (/^\d+$/.test(value)) this.cb.onRetry?.(Number(value));
        break;
      default:
        // Unknown fields are ignored.
        break;
    }
  }

  private dispatch(): void {
    this.lastEventId = this.lastIdBuffer;
    if (this.data.length === 0) {
      this.eventType = "";
      return;
    }
    const ev: SseEvent = {
      id: this.lastEventId,
      event: this.eventType || "message",
      data: this.data.join("\n"),
    };
    this.data = [];
    this.eventType = "";
    this.cb.onEvent(ev);
  }
}
