// `sqlx::migrate!` embeds the migrations when the crate compiles; a new migration file alone
// would not make cargo recompile it (sqlx's documented build script).
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
