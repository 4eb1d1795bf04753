(module
  ;; The source of float16-wasm.ts's bytes: `node packages/lmdb-writer/scripts/build-float16-wasm.js`
  ;; assembles it (wabt) and rewrites them; a test checks that they match.
  ;; float32 -> float16 bits, round half to even, 8 values per step (i32x4 arithmetic on the bits).
  ;; Normal halves: rebias the exponent and round the 13 dropped bits (f - 0x37fff001 + lsb) >> 13.
  ;; Subnormal halves and zero: adding 0.5f lines the 10 kept bits up at the bottom of the float,
  ;; rounded half to even by the FPU; subtracting 0.5f's bits leaves them. Overflow: infinity;
  ;; NaN: a quiet NaN. (F. Giesen's float_to_half_fast3_rtne, as lanes.)
  (memory (export "memory") 1)
  (func (export "toFloat16") (param $src i32) (param $dst i32) (param $n i32)
    (local $end i32)
    (local.set $end (i32.add (local.get $src) (i32.shl (local.get $n) (i32.const 2))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $src) (local.get $end)))
        (v128.store (local.get $dst)
          (i16x8.narrow_i32x4_u
            (call $half (v128.load (local.get $src)))
            (call $half (v128.load offset=16 (local.get $src)))))
        (local.set $src (i32.add (local.get $src) (i32.const 32)))
        (local.set $dst (i32.add (local.get $dst) (i32.const 16)))
        (br $next))))
  (func $half (param $x v128) (result v128)
    (local $f v128)
    (local.set $f (v128.and (local.get $x) (v128.const i32x4 0x7fffffff 0x7fffffff 0x7fffffff 0x7fffffff)))
    (v128.or
      (v128.and (i32x4.shr_u (local.get $x) (i32.const 16)) (v128.const i32x4 0x8000 0x8000 0x8000 0x8000))
      (v128.bitselect
        ;; infinity or NaN
        (v128.bitselect
          (v128.const i32x4 0x7e00 0x7e00 0x7e00 0x7e00)
          (v128.const i32x4 0x7c00 0x7c00 0x7c00 0x7c00)
          (i32x4.gt_s (local.get $f) (v128.const i32x4 0x7f800000 0x7f800000 0x7f800000 0x7f800000)))
        (v128.bitselect
          ;; a normal half
          (i32x4.shr_u
            (i32x4.add
              (i32x4.add (local.get $f) (v128.const i32x4 0xc8000fff 0xc8000fff 0xc8000fff 0xc8000fff))
              (v128.and (i32x4.shr_u (local.get $f) (i32.const 13)) (v128.const i32x4 1 1 1 1)))
            (i32.const 13))
          ;; a subnormal half or zero
          (i32x4.sub
            (f32x4.add (local.get $f) (v128.const f32x4 0.5 0.5 0.5 0.5))
            (v128.const i32x4 0x3f000000 0x3f000000 0x3f000000 0x3f000000))
          (i32x4.ge_s (local.get $f) (v128.const i32x4 0x38800000 0x38800000 0x38800000 0x38800000)))
        (i32x4.ge_s (local.get $f) (v128.const i32x4 0x47800000 0x47800000 0x47800000 0x47800000))))))
