// Distinct kinds of number, so an offset in the file can't be passed where a log
// position is expected. Both stay plain JS numbers (safe to 2^53) on hot paths.

declare const lsnBrand: unique symbol
declare const offsetBrand: unique symbol

/** A byte position in the ever-growing virtual log. Never reused. */
export type Lsn = number & { readonly [lsnBrand]: true }
/** A byte offset in the physical log file. Reused when segment slots are reused. */
export type LogOffset = number & { readonly [offsetBrand]: true }

export const asLsn = (n: number): Lsn => n as Lsn
export const asOffset = (n: number): LogOffset => n as LogOffset
