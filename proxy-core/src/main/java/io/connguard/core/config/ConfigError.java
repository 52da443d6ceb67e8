package io.connguard.core.config;

/**
 * One problem in a configuration file.
 *
 * @param path key path such as {@code listeners[1].upstream}; empty for the whole file
 * @param line 1-based line in the file, or 0 when unknown
 */
public record ConfigError(String path, int line, String message) {

    @Override
    public String toString() {
        String where = path.isEmpty() ? "(file)" : path;
        return line > 0 ? where + " (line " + line + "): " + message : where + ": " + message;
    }
}
