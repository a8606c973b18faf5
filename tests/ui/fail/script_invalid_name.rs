// A typed command's name is checked at compile time.
rapyer::script! {
    /// Has a space in its name.
    BAD("bad name", keys(k), args()) -> i64 = "return 1";
}

rapyer::script! {
    /// Takes a name reserved for the library's own scripts.
    RESERVED("rapyer.mine", keys(k), args()) -> i64 = "return 1";
}

rapyer::script! {
    /// Has no body.
    BLANK("blank", keys(k), args()) -> i64 = "  ";
}

fn main() {}
