package io.connguard.core.config;

import java.util.regex.PatternSyntaxException;

/** A glob: {@code *} matches any run of characters, {@code ?} one character, everything else itself. */
record Glob(String source, java.util.regex.Pattern regex) implements Match.Pattern {

    static Glob compile(String glob) throws PatternSyntaxException {
        StringBuilder re = new StringBuilder();
        StringBuilder literal = new StringBuilder();
        for (int i = 0; i < glob.length(); i++) {
            char c = glob.charAt(i);
            if (c == '*' || c == '?') {
                if (literal.length() > 0) {
                    re.append(java.util.regex.Pattern.quote(literal.toString()));
                    literal.setLength(0);
                }
                re.append(c == '*' ? ".*" : ".");
            } else {
                literal.append(c);
            }
        }
        if (literal.length() > 0) {
            re.append(java.util.regex.Pattern.quote(literal.toString()));
        }
        return new Glob(glob, java.util.regex.Pattern.compile(re.toString(), java.util.regex.Pattern.DOTALL));
    }

    @Override
    public boolean matches(String value) {
        return regex.matcher(value).matches();
    }
}
