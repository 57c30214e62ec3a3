// @ts-check
/**
 * A typed event emitter: `E` maps each event name to the type of its argument.
 * @template {Record<string, any>} E
 */
export class Emitter {
  /** @type {Map<keyof E, Set<(arg: any) => void>>} */
  #handlers = new Map();

  /**
   * @template {keyof E} K
   * @param {K} type
   * @param {(arg: E[K]) => void} handler
   * @returns {() => void} removes the handler
   */
  on(type, handler) {
    let set = this.#handlers.get(type);
    if (!set) this.#handlers.set(type, (set = new Set()));
    set.add(handler);
    return () => set.delete(handler);
  }

  /**
   * @template {keyof E} K
   * @param {K} type
   * @param {E[K]} arg
   */
  emit(type, arg) {
    for (const handler of [...(this.#handlers.get(type) ?? [])]) {
      try {
        handler(arg);
      } catch (err) {
        console.error(`handler for ${String(type)} failed`, err);
      }
    }
  }
}
