/* The dflow grammar: a pure bison parser that builds the AST of ast.h.
 *
 * The rules follow the EBNF of docs/language.md; each builds its node
 * through the constructors in ast.c, so this file holds only structure. The
 * lexer (lexer.l) has already decided which newlines end a statement, so the
 * grammar sees NEWLINE only as a separator. Words such as `data`, `log`,
 * `step` or `f32` are keywords where a declaration or statement begins and
 * ordinary names elsewhere (the `ident` rule); after a '.', any keyword is a
 * field name.
 *
 * Errors: yyreport_syntax_error turns bison's expected-token set into one
 * readable message ("unexpected ')', expected an expression"); when the token
 * that fits is the closer of an open bracket it names the opener's line and
 * adds a note at it. Recovery happens at statement, setting and declaration
 * boundaries (the `error` alternatives), so one run reports several errors. */

%define api.pure full
%define api.prefix {fe_yy}
%define api.token.prefix {TK_}
%define parse.error custom
%define parse.lac full
%locations
%param {yyscan_t scanner}
%parse-param {ParseCtx *ctx}
%expect 0

%code requires {
#include "frontend/parse_internal.h"
#ifndef FE_YYSCAN_T_DEFINED
#define FE_YYSCAN_T_DEFINED
typedef void *yyscan_t;
#endif
}

%code provides {
int fe_yylex(FE_YYSTYPE *lval, FE_YYLTYPE *lloc, yyscan_t scanner);
}

%code {
#include <string.h>

/* Deep nesting is reported ("input nested too deeply") long before it
 * could strain later recursive passes. */
#define YYMAXDEPTH 4000

static void fe_yyerror(FE_YYLTYPE *loc, yyscan_t scanner, ParseCtx *ctx, const char *msg);

static SrcLoc tok(const ParseCtx *c, const FE_YYLTYPE *l) {
    int len = l->first_line == l->last_line ? l->last_column - l->first_column + 1 : 1;
    return fe_loc(c, l->first_line, l->first_column, len);
}

/* From the start of a to the end of b (one line long at most). */
static SrcLoc span(const ParseCtx *c, const FE_YYLTYPE *a, const FE_YYLTYPE *b) {
    int len = a->first_line == b->last_line ? b->last_column - a->first_column + 1 : 1;
    return fe_loc(c, a->first_line, a->first_column, len);
}

#define L(x) tok(ctx, &(x))
#define SPAN(a, b) span(ctx, &(a), &(b))
}

%union {
    int64_t ival;
    double fval;
    const char *str;
    int op;
    Expr *expr;
    Stmt *stmt;
    Decl *decl;
    TypeExpr *type;
    Param *param;
    Arg *arg;
    Setting *setting;
    Block *block;
    PtrVec *vec;
    FeOptItem *optitem;
}

%token <str>  NAME "name"
%token <str>  STRING "string"
%token <ival> INT "integer"
%token <fval> FLOAT "number"
%token NEWLINE "newline"
%token <str> IMPORT "'import'" CONFIG "'config'" DATA "'data'" FN "'fn'"
%token <str> OPTIMIZER "'optimizer'" STATE "'state'" STEP "'step'" TRAIN "'train'"
%token <str> MODEL "'model'"
%token <str> EVERY "'every'" MAIN "'main'" PARAM "'param'" LET "'let'"
%token <str> IF "'if'" THEN "'then'" ELSE "'else'" FOR "'for'" IN "'in'"
%token <str> WHILE "'while'" REPEAT "'repeat'" BREAK "'break'" RETURN "'return'"
%token <str> LOG "'log'" SAVE "'save'" PRINT "'print'"
%token <str> TRUE "'true'" FALSE "'false'" NONE "'None'"
%token <str> INTKW "'int'" FLOATKW "'float'" STRKW "'str'" DTYPE "dtype"
%token ELLIPSIS "'...'" DOTDOT "'..'" POW "'**'" FLOORDIV "'//'" EQ "'=='" NE "'!='" LE "'<='" GE "'>='"
%token ANDAND "'&&'" OROR "'||'" ARROW "'->'"
%token ADD_ASSIGN "'+='" SUB_ASSIGN "'-='" MUL_ASSIGN "'*='" DIV_ASSIGN "'/='"

%type <str> ident field_name
%type <decl> decl import config data fn_decl optimizer model train main
%type <vec> import_names config_items config_line settings train_items train_line
%type <vec> opt_items params_opt params stmts targets log_items exprs args_opt args indices dims
%type <optitem> opt_item
%type <setting> setting
%type <param> param_decl ptype
%type <type> type ret_opt
%type <block> block
%type <stmt> opt_stmt stmt if_stmt
%type <op> assign_op cmp_op mul_op
%type <arg> arg log_item
%type <expr> expr or_expr and_expr cmp_expr add_expr mul_expr unary power postfix primary index dim

%%

/* program = { decl } ; declarations are separated by newlines or ';' */
program
    : decls
    ;

decls
    : opt_decl
    | decls sep opt_decl
    ;

/* After an error, a following { ... } is parsed as a block, so that the
 * body of a declaration with a broken header still gets checked and its
 * braces stay balanced. */
opt_decl
    : %empty
    | decl              { fe_add_decl(ctx, $1); }
    | error
    | error block
    ;

sep
    : NEWLINE
    | ';'
    ;

decl
    : import | config | data | fn_decl | optimizer | model | train | main
    ;

/* import = "import" name { "," name } */
import
    : IMPORT import_names                       { $$ = fe_import(ctx, L(@1), $2); }
    ;

import_names
    : ident                                     { $$ = fe_vec1(ctx, fe_name(ctx, L(@1), $1)); }
    | import_names ',' ident                    { $$ = fe_push(ctx, $1, fe_name(ctx, L(@3), $3)); }
    ;

/* config = "config" "{" { name "=" expr sep } "}" */
config
    : CONFIG '{' { $<vec>$ = fe_vec(ctx); } config_items '}'
                                                { $$ = fe_config(ctx, L(@1), $<vec>3); (void)$4; }
    ;

config_items
    : config_line                               { $$ = fe_append(ctx, $<vec>0, $1); }
    | config_items sep config_line              { $$ = fe_append(ctx, $<vec>0, $3); }
    ;

config_line
    : %empty                                    { $$ = NULL; }
    | settings
    | error                                     { $$ = NULL; }
    ;

/* setting = name "=" expr { "," name "=" expr } */
settings
    : setting                                   { $$ = fe_vec1(ctx, $1); }
    | settings ',' setting                      { $$ = fe_push(ctx, $1, $3); }
    ;

setting
    : ident '=' expr                            { $$ = fe_setting(ctx, $1, L(@1), $3); }
    ;

/* data = "data" name "=" expr */
data
    : DATA ident '=' expr                       { $$ = fe_data(ctx, L(@1), $2, L(@2), $4); }
    ;

/* fn = "fn" name "(" [ params ] ")" [ "->" type ] ( block | "=" expr ) */
fn_decl
    : FN ident '(' params_opt ')' ret_opt block
                                                { $$ = fe_fn(ctx, L(@1), $2, L(@2), $4, $6, $7, NULL); }
    | FN ident '(' params_opt ')' ret_opt '=' expr
                                                { $$ = fe_fn(ctx, L(@1), $2, L(@2), $4, $6, NULL, $8); }
    ;

ret_opt
    : %empty                                    { $$ = NULL; }
    | ARROW type                                { $$ = $2; }
    ;

params_opt
    : %empty                                    { $$ = fe_vec(ctx); }
    | params
    | params ','
    ;

params
    : param_decl                                { $$ = fe_vec1(ctx, $1); }
    | params ',' param_decl                     { $$ = fe_push(ctx, $1, $3); }
    ;

/* param_decl = name [ ":" ( type | "int" | "float" | "str" ) ] [ "=" expr ] */
param_decl
    : ident                                     { $$ = fe_param(ctx, $1, L(@1), PK_ANY, NULL, NULL); }
    | ident '=' expr                            { $$ = fe_param(ctx, $1, L(@1), PK_ANY, NULL, $3); }
    | ident ':' ptype                           { $$ = $3; if ($$) { $$->name = $1; $$->loc = L(@1); } }
    | ident ':' ptype '=' expr                  { $$ = $3; if ($$) { $$->name = $1; $$->loc = L(@1); $$->deflt = $5; } }
    ;

ptype
    : type                                      { $$ = fe_param(ctx, NULL, L(@1), PK_TYPE, $1, NULL); }
    | INTKW                                     { $$ = fe_param(ctx, NULL, L(@1), PK_INT, NULL, NULL); }
    | FLOATKW                                   { $$ = fe_param(ctx, NULL, L(@1), PK_FLOAT, NULL, NULL); }
    | STRKW                                     { $$ = fe_param(ctx, NULL, L(@1), PK_STR, NULL, NULL); }
    ;

/* type = dtype [ "[" [ dim { "," dim } ] "]" ] ; dim = expr | "..." */
type
    : DTYPE                                     { $$ = fe_type(ctx, L(@1), $1, false, NULL); }
    | DTYPE '[' ']'                             { $$ = fe_type(ctx, L(@1), $1, true, fe_vec(ctx)); }
    | DTYPE '[' dims ']'                        { $$ = fe_type(ctx, L(@1), $1, true, $3); }
    ;

dims
    : dim                                       { $$ = fe_vec1(ctx, $1); }
    | dims ',' dim                              { $$ = fe_push(ctx, $1, $3); }
    ;

dim
    : expr
    | ELLIPSIS                                  { $$ = NULL; /* "..." */ }
    ;

/* optimizer = "optimizer" name "(" [ params ] ")" "{" { state } "step" block "}" */
optimizer
    : OPTIMIZER ident '(' params_opt ')' '{' { $<vec>$ = fe_vec(ctx); } opt_items '}'
                                                { $$ = fe_optimizer(ctx, L(@1), $2, L(@2), $4, $<vec>7); (void)$8; }
    ;

opt_items
    : opt_item                                  { $$ = $<vec>0; if ($1) fe_push(ctx, $$, $1); }
    | opt_items sep opt_item                    { $$ = $<vec>0; if ($3) fe_push(ctx, $$, $3); }
    ;

opt_item
    : %empty                                    { $$ = NULL; }
    | STATE ident '=' expr                      { $$ = fe_opt_state(ctx, fe_setting(ctx, $2, L(@2), $4)); }
    | STEP block                                { $$ = fe_opt_step(ctx, L(@1), $2); }
    | error                                     { $$ = NULL; }
    ;

/* model = "model" name "=" expr ; a named instance of a fn (its own parameters) */
model
    : MODEL ident '=' expr                      { $$ = fe_model(ctx, L(@1), $2, L(@2), $4); }
    ;

/* train = "train" name "{" { setting | every } "}" */
train
    : TRAIN ident '{' { $<vec>$ = fe_vec(ctx); } train_items '}'
                                                { $$ = fe_train(ctx, L(@1), $2, L(@2), $<vec>4); (void)$5; }
    ;

train_items
    : train_line                                { $$ = fe_append(ctx, $<vec>0, $1); }
    | train_items sep train_line                { $$ = fe_append(ctx, $<vec>0, $3); }
    ;

train_line
    : %empty                                    { $$ = NULL; }
    | settings {
          $$ = fe_vec(ctx);
          for (int i = 0; $1 && i < $1->n; i++) fe_push(ctx, $$, fe_train_setting(ctx, $1->items[i]));
      }
    | EVERY expr block                          { $$ = fe_vec1(ctx, fe_train_every(ctx, L(@1), $2, $3)); }
    | error                                     { $$ = NULL; }
    | error block                               { $$ = NULL; }
    ;

/* main = "main" block */
main
    : MAIN block                                { $$ = fe_main(ctx, L(@1), $2); }
    ;

/* block = "{" { stmt } "}" */
/* The statement list is created before the statements ($<vec>0 inside
 * stmts), so that error recovery, which may pop a reduced list off the
 * stack, never loses the statements already parsed. */
block
    : '{' { $<vec>$ = fe_vec(ctx); } stmts '}'  { $$ = fe_block(ctx, L(@1), L(@4), $<vec>2); (void)$3; }
    ;

stmts
    : opt_stmt                                  { $$ = $<vec>0; if ($1) fe_push(ctx, $$, $1); }
    | stmts sep opt_stmt                        { $$ = $<vec>0; if ($3) fe_push(ctx, $$, $3); }
    ;

opt_stmt
    : %empty                                    { $$ = NULL; }
    | stmt
    | error                                     { $$ = NULL; }
    | error block                               { $$ = NULL; }
    ;

stmt
    : PARAM ident ':' type                      { $$ = fe_param_stmt(ctx, L(@1), $2, L(@2), $4, NULL); }
    | PARAM ident ':' type '=' expr             { $$ = fe_param_stmt(ctx, L(@1), $2, L(@2), $4, $6); }
    | LET ident '=' expr                        { $$ = fe_let(ctx, L(@1), $2, L(@2), $4); }
    | targets assign_op expr                    { $$ = fe_assign(ctx, L(@2), $1, (AssignOp)$2, $3); }
    | if_stmt
    | FOR ident IN expr DOTDOT expr block       { $$ = fe_for(ctx, L(@1), $2, L(@2), $4, $6, $7); }
    | WHILE expr block                          { $$ = fe_while(ctx, L(@1), $2, $3); }
    | REPEAT expr block                         { $$ = fe_repeat(ctx, L(@1), $2, $3); }
    | BREAK                                     { $$ = fe_stmt(ctx, ST_BREAK, L(@1)); }
    | RETURN expr                               { $$ = fe_return(ctx, L(@1), $2); }
    | LOG log_items                             { $$ = fe_log(ctx, L(@1), $2); }
    | SAVE STRING expr                          { $$ = fe_save(ctx, L(@1), $2, $3); }
    | SAVE '(' STRING ',' expr ')'              { $$ = fe_save(ctx, L(@1), $3, $5); }
    | PRINT exprs                               { $$ = fe_print(ctx, L(@1), $2); }
    | PRINT '(' ')'                             { $$ = fe_print(ctx, L(@1), fe_vec(ctx)); }
    | PRINT '(' expr ',' exprs ')'              { $$ = fe_print(ctx, L(@1), fe_append(ctx, fe_vec1(ctx, $3), $5)); }
    | EVERY expr block                          { $$ = fe_every(ctx, L(@1), $2, $3); }
    | fn_decl                                   { $$ = fe_fn_stmt(ctx, $1); }
    | expr                                      { $$ = fe_expr_stmt(ctx, $1); }
    ;

/* if_stmt = "if" expr block [ "else" ( block | if_stmt ) ] */
if_stmt
    : IF expr block                             { $$ = fe_if_stmt(ctx, L(@1), $2, $3, NULL); }
    | IF expr block ELSE block                  { $$ = fe_if_stmt(ctx, L(@1), $2, $3, $5); }
    | IF expr block ELSE if_stmt                { $$ = fe_else_if(ctx, L(@1), $2, $3, $5); }
    ;

/* target = postfix (a name, a field or an element) */
targets
    : postfix                                   { $$ = fe_vec1(ctx, $1); }
    | targets ',' postfix                       { $$ = fe_push(ctx, $1, $3); }
    ;

assign_op
    : '='                                       { $$ = AS_SET; }
    | ADD_ASSIGN                                { $$ = AS_ADD; }
    | SUB_ASSIGN                                { $$ = AS_SUB; }
    | MUL_ASSIGN                                { $$ = AS_MUL; }
    | DIV_ASSIGN                                { $$ = AS_DIV; }
    ;

log_items
    : log_item                                  { $$ = fe_vec1(ctx, $1); }
    | log_items ',' log_item                    { $$ = fe_push(ctx, $1, $3); }
    ;

log_item
    : ident '=' expr                            { $$ = fe_arg(ctx, $1, L(@1), $3); }
    ;

exprs
    : expr                                      { $$ = fe_vec1(ctx, $1); }
    | exprs ',' expr                            { $$ = fe_push(ctx, $1, $3); }
    ;

/* expr = "if" expr "then" expr "else" expr | "fn" "(" [ params ] ")" expr | or */
expr
    : IF expr THEN expr ELSE expr               { $$ = fe_if_expr(ctx, L(@1), $2, $4, $6); }
    | FN '(' params_opt ')' expr                { $$ = fe_lambda(ctx, L(@1), $3, $5); }
    | or_expr
    ;

or_expr
    : or_expr OROR and_expr                     { $$ = fe_binary(ctx, L(@2), OPK_OR, $1, $3); }
    | and_expr
    ;

and_expr
    : and_expr ANDAND cmp_expr                  { $$ = fe_binary(ctx, L(@2), OPK_AND, $1, $3); }
    | cmp_expr
    ;

/* comparisons do not chain: a < b < c is a syntax error */
cmp_expr
    : add_expr
    | add_expr cmp_op add_expr                  { $$ = fe_binary(ctx, L(@2), (OpKindAst)$2, $1, $3); }
    ;

cmp_op
    : EQ                                        { $$ = OPK_EQ; }
    | NE                                        { $$ = OPK_NE; }
    | '<'                                       { $$ = OPK_LT; }
    | LE                                        { $$ = OPK_LE; }
    | '>'                                       { $$ = OPK_GT; }
    | GE                                        { $$ = OPK_GE; }
    ;

add_expr
    : add_expr '+' mul_expr                     { $$ = fe_binary(ctx, L(@2), OPK_ADD, $1, $3); }
    | add_expr '-' mul_expr                     { $$ = fe_binary(ctx, L(@2), OPK_SUB, $1, $3); }
    | mul_expr
    ;

mul_expr
    : mul_expr mul_op unary                     { $$ = fe_binary(ctx, L(@2), (OpKindAst)$2, $1, $3); }
    | unary
    ;

mul_op
    : '*'                                       { $$ = OPK_MUL; }
    | '/'                                       { $$ = OPK_DIV; }
    | FLOORDIV                                  { $$ = OPK_FLOORDIV; }
    | '%'                                       { $$ = OPK_MOD; }
    | '@'                                       { $$ = OPK_MATMUL; }
    ;

/* unary binds looser than **: -x ** 2 is -(x ** 2); ** is right-associative */
unary
    : '-' unary                                 { $$ = fe_unary(ctx, L(@1), OPK_NEG, $2); }
    | '+' unary                                 { $$ = fe_unary(ctx, L(@1), OPK_PLUS, $2); }
    | '!' unary                                 { $$ = fe_unary(ctx, L(@1), OPK_NOT, $2); }
    | power
    ;

power
    : postfix
    | postfix POW unary                         { $$ = fe_binary(ctx, L(@2), OPK_POW, $1, $3); }
    ;

postfix
    : primary
    | postfix '(' args_opt ')'                  { $$ = fe_call(ctx, L(@1), $1, $3); }
    | postfix '[' indices ']'                   { $$ = fe_index(ctx, L(@2), $1, $3); }
    | postfix '.' field_name                    { $$ = fe_field(ctx, SPAN(@1, @3), $1, $3, L(@3)); }
    ;

primary
    : INT                                       { $$ = fe_int(ctx, L(@1), $1); }
    | FLOAT                                     { $$ = fe_float(ctx, L(@1), $1); }
    | STRING                                    { $$ = fe_string(ctx, L(@1), $1); }
    | TRUE                                      { $$ = fe_bool(ctx, L(@1), true); }
    | FALSE                                     { $$ = fe_bool(ctx, L(@1), false); }
    | NONE                                      { $$ = fe_expr(ctx, EX_NONE, L(@1)); }
    | ident                                     { $$ = fe_name(ctx, L(@1), $1); }
    | '(' expr ')'                              { $$ = $2; }
    | '[' args_opt ']'                          { $$ = fe_list(ctx, L(@1), $2); }
    ;

/* args = arg { "," arg } ; arg = [ name "=" ] expr (a trailing comma is fine) */
args_opt
    : %empty                                    { $$ = fe_vec(ctx); }
    | args
    | args ','
    ;

args
    : arg                                       { $$ = fe_vec1(ctx, $1); }
    | args ',' arg                              { $$ = fe_push(ctx, $1, $3); }
    ;

arg
    : expr                                      { $$ = fe_arg(ctx, NULL, L(@1), $1); }
    | ident '=' expr                            { $$ = fe_arg(ctx, $1, L(@1), $3); }
    ;

/* index = expr | [ expr ] ":" [ expr ] | "None" (None is a primary) */
indices
    : index                                     { $$ = fe_vec1(ctx, $1); }
    | indices ',' index                         { $$ = fe_push(ctx, $1, $3); }
    ;

index
    : expr
    | ':'                                       { $$ = fe_slice(ctx, L(@1), NULL, NULL); }
    | expr ':'                                  { $$ = fe_slice(ctx, L(@2), $1, NULL); }
    | ':' expr                                  { $$ = fe_slice(ctx, L(@1), NULL, $2); }
    | expr ':' expr                             { $$ = fe_slice(ctx, L(@2), $1, $3); }
    ;

/* Words that are keywords only where a declaration or statement begins. */
ident
    : NAME | DATA | OPTIMIZER | STATE | STEP | TRAIN | MODEL | LOG | MAIN | CONFIG | IMPORT
    | INTKW | FLOATKW | STRKW | DTYPE
    ;

/* After '.', every word is a field name. */
field_name
    : ident | IF | THEN | ELSE | FN | FOR | IN | WHILE | REPEAT | BREAK | RETURN | SAVE
    | PRINT | EVERY | PARAM | LET | TRUE | FALSE | NONE
    ;

%%

/* ---- syntax error messages ---- */

/* Words that may stand where a name is expected. */
static bool is_name_token(yysymbol_kind_t k) {
    switch (k) {
    case YYSYMBOL_NAME: case YYSYMBOL_DATA: case YYSYMBOL_OPTIMIZER: case YYSYMBOL_STATE:
    case YYSYMBOL_STEP: case YYSYMBOL_TRAIN: case YYSYMBOL_MODEL: case YYSYMBOL_LOG: case YYSYMBOL_MAIN:
    case YYSYMBOL_CONFIG: case YYSYMBOL_IMPORT: case YYSYMBOL_INTKW: case YYSYMBOL_FLOATKW:
    case YYSYMBOL_STRKW: case YYSYMBOL_DTYPE:
        return true;
    default:
        return false;
    }
}

/* The symbol of a one-character token such as '('. */
static yysymbol_kind_t chr(int c) {
    return YYTRANSLATE(c);
}

/* Tokens that only continue an expression (operators, calls, fields). */
static bool is_operator_token(yysymbol_kind_t k) {
    switch (k) {
    case YYSYMBOL_POW: case YYSYMBOL_FLOORDIV: case YYSYMBOL_EQ: case YYSYMBOL_NE: case YYSYMBOL_LE: case YYSYMBOL_GE:
    case YYSYMBOL_ANDAND: case YYSYMBOL_OROR:
        return true;
    default:
        return k == chr('+') || k == chr('-') || k == chr('*') || k == chr('/') || k == chr('%') ||
               k == chr('@') || k == chr('<') || k == chr('>') || k == chr('(') || k == chr('[') ||
               k == chr('.');
    }
}

/* How a token is named in "expected ..." (without its spelling). */
static const char *token_desc(yysymbol_kind_t k) {
    switch (k) {
    case YYSYMBOL_YYEOF: return "end of file";
    case YYSYMBOL_NAME: return "a name";
    case YYSYMBOL_STRING: return "a string";
    case YYSYMBOL_INT: return "an integer";
    case YYSYMBOL_FLOAT: return "a number";
    case YYSYMBOL_DTYPE: return "a dtype (f32, f64, f16, bf16, i32, i64, bool)";
    case YYSYMBOL_NEWLINE: return "newline";
    default: return yysymbol_name(k);
    }
}

/* The unexpected token, with its spelling where that helps. */
static const char *unexpected_desc(ParseCtx *c, yysymbol_kind_t k) {
    const char *t = c->la_text;
    switch (k) {
    case YYSYMBOL_YYEOF: return "end of file";
    case YYSYMBOL_NEWLINE: return "newline";
    case YYSYMBOL_NAME: return arena_printf(c->arena, "name '%s'", t);
    case YYSYMBOL_INT: return arena_printf(c->arena, "integer '%s'", t);
    case YYSYMBOL_FLOAT: return arena_printf(c->arena, "number '%s'", t);
    case YYSYMBOL_STRING: return arena_printf(c->arena, "string %s", t);
    case YYSYMBOL_DTYPE: return arena_printf(c->arena, "'%s'", t);
    default:
        if (k >= YYSYMBOL_IMPORT && k <= YYSYMBOL_STRKW) return arena_printf(c->arena, "keyword '%s'", t);
        return yysymbol_name(k);
    }
}

static const char *closer_of(char opener) {
    return opener == '(' ? "')'" : opener == '[' ? "']'" : "'}'";
}

static yysymbol_kind_t closer_symbol(char opener) {
    return chr(opener == '(' ? ')' : opener == '[' ? ']' : '}');
}

static bool is_closer(yysymbol_kind_t k) {
    return k == chr(')') || k == chr(']') || k == chr('}');
}

/* Describes the expected set in a few words: a category when bison expects
 * the start of a declaration, statement or expression; otherwise the
 * tokens themselves, leaving out operators that could merely continue what
 * came before. Returns NULL when the list would be too long to help. */
static const char *expected_desc(ParseCtx *c, const yysymbol_kind_t *e, int n) {
    bool has[YYNTOKENS] = {false};
    for (int i = 0; i < n; i++) has[e[i]] = true;
    const char *parts[10];
    int np = 0;
    if (has[YYSYMBOL_IMPORT] && has[YYSYMBOL_TRAIN] && !has[YYSYMBOL_NAME]) {
        parts[np++] = "a declaration (import, config, data, fn, optimizer, model, train or main)";
    } else if (has[YYSYMBOL_PARAM] && has[YYSYMBOL_LET]) {
        parts[np++] = "a statement";
        if (has[chr('}')]) parts[np++] = "'}'";
    } else if (has[YYSYMBOL_INT]) {
        parts[np++] = "an expression";
        const yysymbol_kind_t extra[] = {chr(')'), chr(']'), chr(':'), YYSYMBOL_ELLIPSIS};
        for (size_t i = 0; i < sizeof extra / sizeof extra[0]; i++)
            if (has[extra[i]]) parts[np++] = yysymbol_name(extra[i]);
    } else {
        bool only_ops = true;
        for (int i = 0; i < n; i++)
            if (!is_operator_token(e[i])) only_ops = false;
        bool named = false;
        if (has[YYSYMBOL_DTYPE] && !has[YYSYMBOL_NAME]) {
            named = true; /* a type, not a name, is expected */
            parts[np++] = has[YYSYMBOL_INTKW] ? "a type (a dtype such as f32[N], or int, float, str)"
                                              : "a dtype (f32, f64, f16, bf16, i32, i64 or bool)";
        }
        for (int i = 0; i < n; i++) {
            yysymbol_kind_t k = e[i];
            if (!only_ops && is_operator_token(k)) continue;
            if (k == YYSYMBOL_NEWLINE || k == chr(';')) continue; /* listed last */
            /* after a complete statement, '}' and end of file are implied */
            if ((k == chr('}') || k == YYSYMBOL_YYEOF) && has[YYSYMBOL_NEWLINE]) continue;
            /* '+=' and friends go without saying once '=' is listed */
            if (has[chr('=')] && (k == YYSYMBOL_ADD_ASSIGN || k == YYSYMBOL_SUB_ASSIGN ||
                                  k == YYSYMBOL_MUL_ASSIGN || k == YYSYMBOL_DIV_ASSIGN))
                continue;
            if (is_name_token(k)) {
                if (named) continue;
                named = true;
                k = YYSYMBOL_NAME;
            }
            if (np >= 6) return NULL;
            parts[np++] = token_desc(k);
        }
        if (has[chr(';')]) parts[np++] = "';'";
        if (has[YYSYMBOL_NEWLINE]) parts[np++] = "newline";
    }
    if (np == 0) return NULL;
    const char *s = parts[0];
    for (int i = 1; i < np; i++)
        s = arena_printf(c->arena, "%s%s%s", s, i == np - 1 ? " or " : ", ", parts[i]);
    return s;
}

static int yyreport_syntax_error(const yypcontext_t *yyctx, yyscan_t scanner, ParseCtx *ctx) {
    (void)scanner;
    ctx->recovering = true; /* lets the lexer end the broken statement at a newline */
    yysymbol_kind_t la = yypcontext_token(yyctx);
    SrcLoc loc = tok(ctx, yypcontext_location(yyctx));
    yysymbol_kind_t exp[YYNTOKENS];
    int n = yypcontext_expected_tokens(yyctx, exp, YYNTOKENS);
    if (n < 0) n = 0;
    const char *what = unexpected_desc(ctx, la);
    Diag *d;

    bool expects_la = false;
    for (int i = 0; i < n; i++)
        if (exp[i] == la) expects_la = true;
    if (la == YYSYMBOL_ELSE && !expects_la) {
        diag_error(ctx->diags, loc, "'else' without a matching 'if' (it must follow the if's '}')");
        return 0;
    }

    bool is_cmp = la == YYSYMBOL_EQ || la == YYSYMBOL_NE || la == YYSYMBOL_LE || la == YYSYMBOL_GE ||
                  la == chr('<') || la == chr('>');
    bool expects_expr = false;
    for (int i = 0; i < n; i++)
        if (exp[i] == YYSYMBOL_INT) expects_expr = true;
    if (is_cmp && !expects_la && !expects_expr) {
        diag_error(ctx->diags, loc, "comparisons do not chain: write a < b && b < c");
        return 0;
    }

    /* a missing closer: name the bracket it should close */
    if (ctx->la_has_open) {
        FeOpener o = ctx->la_open;
        yysymbol_kind_t want = closer_symbol(o.kind);
        bool expects = false;
        for (int i = 0; i < n; i++)
            if (exp[i] == want) expects = true;
        /* Inside ( ) or [ ] newlines do not end anything, so a token that
         * starts a later line is where the closer went missing; in a block
         * only end of file or a wrong closer says so. */
        bool broke_off = la == YYSYMBOL_YYEOF || is_closer(la) ||
                         (o.kind != '{' && (la == chr('{') || (int)loc.line > ctx->la_prev_line));
        if (expects && broke_off) {
            d = diag_error(ctx->diags, loc, "unexpected %s, expected %s to close '%c' at line %u",
                           what, closer_of(o.kind), o.kind, o.loc.line);
            diag_add_note(ctx->diags, d, o.loc, "to match this '%c'", o.kind);
            return 0;
        }
    }
    const char *expected = expected_desc(ctx, exp, n);
    if (expected)
        d = diag_error(ctx->diags, loc, "unexpected %s, expected %s", what, expected);
    else
        d = diag_error(ctx->diags, loc, "unexpected %s", what);
    if (la == YYSYMBOL_YYEOF && ctx->la_has_open)
        diag_add_note(ctx->diags, d, ctx->la_open.loc, "'%c' opened here is never closed", ctx->la_open.kind);
    return 0;
}

static void fe_yyerror(FE_YYLTYPE *loc, yyscan_t scanner, ParseCtx *ctx, const char *msg) {
    (void)scanner;
    if (strstr(msg, "memory exhausted"))
        diag_error(ctx->diags, tok(ctx, loc), "input nested too deeply");
    else
        diag_error(ctx->diags, tok(ctx, loc), "%s", msg);
}
