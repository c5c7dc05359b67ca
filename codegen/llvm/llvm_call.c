/* Calls from emitted code (llvm_internal.h, "calls"): LLVM intrinsics,
 * libm and external symbols (cblas, kernels of another module), each
 * declared once per module, so that the op table, the math emitters and
 * the kernel emitter build calls the same way. */
#include <string.h>

#include "llvm_internal.h"

LLVMValueRef llvm_declare(LlvmCG *cg, const char *name, LLVMTypeRef fty) {
    LLVMValueRef fn = LLVMGetNamedFunction(cg->mod, name);
    return fn ? fn : LLVMAddFunction(cg->mod, name, fty);
}

LLVMValueRef llvm_intrinsic(LlvmCG *cg, const char *name, LLVMTypeRef *over, unsigned nover,
                            LLVMValueRef *args, unsigned nargs) {
    unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
    if (!id) {
        llvm_fail(cg, "unknown intrinsic %s", name);
        return NULL;
    }
    LLVMValueRef fn = LLVMGetIntrinsicDeclaration(cg->mod, id, over, nover);
    LLVMTypeRef fty = LLVMIntrinsicGetType(cg->ctx, id, over, nover);
    return LLVMBuildCall2(cg->b, fty, fn, args, nargs, "");
}

LLVMValueRef llvm_intrinsic1(LlvmCG *cg, const char *name, LLVMValueRef x) {
    LLVMTypeRef t = LLVMTypeOf(x);
    return llvm_intrinsic(cg, name, &t, 1, &x, 1);
}

LLVMValueRef llvm_intrinsic2(LlvmCG *cg, const char *name, LLVMValueRef x, LLVMValueRef y) {
    LLVMTypeRef t = LLVMTypeOf(x);
    LLVMValueRef a[2] = {x, y};
    return llvm_intrinsic(cg, name, &t, 1, a, 2);
}

LLVMValueRef llvm_call_libm(LlvmCG *cg, const char *name, LLVMValueRef x) {
    LLVMTypeRef fty = LLVMFunctionType(cg->f64, &cg->f64, 1, 0);
    LLVMValueRef fn = LLVMGetNamedFunction(cg->mod, name);
    if (!fn) {
        fn = LLVMAddFunction(cg->mod, name, fty);
        unsigned k = LLVMGetEnumAttributeKindForName("nounwind", 8);
        LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex,
                                LLVMCreateEnumAttribute(cg->ctx, k, 0));
    }
    return LLVMBuildCall2(cg->b, fty, fn, &x, 1, "");
}
