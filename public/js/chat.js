// The chat panel: history from `welcome.chat`, live messages, unread badge, Enter to send.
// Names and texts are rendered with textContent only.
import { el, formatTime } from "./util.js";

export class Chat {
  /**
   * @param {{list: HTMLElement, form: HTMLFormElement, input: HTMLTextAreaElement, badge: HTMLElement,
   *          send: (text: string) => boolean, isOpen: () => boolean}} opts
   */
  constructor({ list, form, input, badge, send, isOpen }) {
    this.list = list;
    this.form = form;
    this.input = input;
    this.badge = badge;
    this.sendFn = send;
    this.isOpen = isOpen;
    this.seen = new Set(); // message ids already shown (history is replayed on every re-join)
    this.unread = 0;
    this.selfId = null;
    this.empty = el("li", { className: "chat-empty", text: "No messages yet. Say hello!" });
    this.list.append(this.empty);

    form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.submit();
    });
    input.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        this.submit();
      }
    });
  }

  /** Our own peer id: our messages are marked as ours and never counted as unread. */
  setSelf(peerId) {
    this.selfId = peerId;
  }

  setLimit(max) {
    if (max > 0) this.input.maxLength = max;
  }

  submit() {
    const text = this.input.value.trim();
    if (!text) return;
    if (this.sendFn(text)) this.input.value = "";
  }

  /** Adds records (from welcome history or live); returns how many were new. */
  add(records, { live = false } = {}) {
    let added = 0;
    for (const r of records) {
      if (!r || this.seen.has(r.id)) continue;
      this.seen.add(r.id);
      this._render(r);
      added++;
      if (live && r.peerId !== this.selfId && !this.isOpen()) this.unread++;
    }
    if (added) {
      this.empty.remove();
      this.list.scrollTop = this.list.scrollHeight;
      this._badge();
    }
    return added;
  }

  markRead() {
    this.unread = 0;
    this._badge();
  }

  _badge() {
    this.badge.textContent = this.unread > 9 ? "9+" : String(this.unread);
    this.badge.hidden = this.unread === 0;
  }

  _render(r) {
    const mine = r.peerId === this.selfId;
    const time = el("time", { className: "chat-time", text: formatTime(r.ts), attrs: { datetime: new Date(r.ts).toISOString() } });
    const item = el(
      "li",
      { className: "chat-message" + (mine ? " mine" : ""), attrs: { "data-testid": "chat-message" }, dataset: { id: String(r.id) } },
      el("div", { className: "chat-meta" },
        el("span", { className: "chat-name", text: r.name, attrs: { "data-testid": "chat-name" } }),
        time),
      el("p", { className: "chat-text", text: r.text, attrs: { "data-testid": "chat-text" } }),
    );
    // Keep order by id even if a re-join's history overlaps live messages.
    const after = [...this.list.querySelectorAll(".chat-message")].find((n) => Number(n.dataset.id) > r.id);
    this.list.insertBefore(item, after ?? null);
  }
}
