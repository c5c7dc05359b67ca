/* Keeps the codegen library non-empty while it has no sources of its own. */
void dflow_codegen_anchor(void);
void dflow_codegen_anchor(void) {}
