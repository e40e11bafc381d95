/** The absolute path of litestream.so inside this package. */
export declare function getLoadablePath(): string;
/**
 * Loads the extension into a better-sqlite3 Database or a node:sqlite
 * DatabaseSync opened with { allowExtension: true }.
 */
export declare function load(db: { loadExtension(path: string): unknown }): void;
