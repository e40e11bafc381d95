"""litestream_ext: the litestream SQLite extension, packaged for Python.

Replicates a SQLite database to object storage (S3 and compatible stores,
Google Cloud Storage, a directory) from inside the process, and
restores it, with SQL::

    import sqlite3, litestream_ext
    boot = sqlite3.connect(":memory:")
    litestream_ext.load(boot)           # once per process
    db = sqlite3.connect("app.db")      # opened after the load: replicable
    db.execute("PRAGMA litestream_url = 's3://my-bucket/app'")

The extension is a shared library (litestream.so) that needs libcurl,
OpenSSL 3, jansson and lz4 from the system (Debian/Ubuntu: libcurl4 libssl3
libjansson4 liblz4-1).
"""
import os
import sqlite3

__version__ = "@VERSION@"
__all__ = ["loadable_path", "load", "__version__"]

_NO_LOADING = (
    "litestream_ext: this Python's sqlite3 module cannot load extensions "
    "(it was built without --enable-loadable-sqlite-extensions, or against "
    "a SQLite built with SQLITE_OMIT_LOAD_EXTENSION, as macOS's system "
    "Python is).  Use a Python whose sqlite3 can (Debian's and Ubuntu's "
    "python3 can; a Python built from source needs "
    "./configure --enable-loadable-sqlite-extensions), or pass "
    "litestream_ext.loadable_path() to another SQLite binding.")
_NO_LIBS = (
    "  litestream.so needs libcurl, OpenSSL 3, jansson and lz4 from the "
    "system: on Debian/Ubuntu, apt-get install libcurl4 libssl3 "
    "libjansson4 liblz4-1.")


def loadable_path():
    """The absolute path of litestream.so inside this package, for
    conn.load_extension() or any other SQLite host (the sqlite3 shell's
    .load, another language's binding)."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)),
                        "litestream.so")


def _sql_loading_enabled(conn):
    """Whether SELECT load_extension() is allowed on conn (the state that
    enable_load_extension() sets, which Python < 3.12 cannot read): a
    load of a file that does not exist fails with "not authorized" when
    it is not, with a file error when it is."""
    try:
        conn.execute("SELECT load_extension(?)",
                     ("/nonexistent/litestream-ext-probe",)).fetchall()
    except Exception as e:  # sqlite3.Error, or another binding's
        return "not authorized" not in str(e)
    return True


def load(conn):
    """Loads the extension into the sqlite3 connection conn.

    Extension loading is enabled for the load only, then set back as it
    was: on Python >= 3.12 through the connection's
    SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION setting (the C API only; the SQL
    function load_extension() is never enabled), before that through
    enable_load_extension(), left enabled only if it already was.

    The first load registers the litestream VFS and SQL functions for the
    whole process: databases opened after it (on any connection) can be
    replicated.  Loading again is harmless.  Raises RuntimeError when this
    Python cannot load extensions, sqlite3.OperationalError (with what to
    install) when the library's dependencies are missing."""
    if not hasattr(conn, "enable_load_extension"):
        raise RuntimeError(_NO_LOADING)
    op = getattr(sqlite3, "SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION", None)
    if op is not None and hasattr(conn, "getconfig"):
        was = conn.getconfig(op)
        conn.setconfig(op, True)
        restore = lambda: conn.setconfig(op, was)  # noqa: E731
    else:
        was = _sql_loading_enabled(conn)
        conn.enable_load_extension(True)
        restore = lambda: was or conn.enable_load_extension(False)  # noqa
    try:
        conn.load_extension(loadable_path())
    except sqlite3.OperationalError as e:
        if ("cannot open shared object file" in str(e)
                and os.path.exists(loadable_path())):
            raise sqlite3.OperationalError(str(e) + _NO_LIBS) from e
        raise
    finally:
        restore()
