//! A safe, strided f32 matrix product on the `gemm` crate (the one candle's CPU matmul uses),
//! for code that works on plain slices: it can accumulate into its output, which fuses bias and
//! residual additions into the product.

/// A strided view of a matrix inside a slice: element `(r, c)` is
/// `data[r * row_stride + c * col_stride]`.
#[derive(Clone, Copy)]
pub(crate) struct View<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

impl<'a> View<'a> {
    /// A row-major matrix whose rows start `row_stride` apart.
    pub fn rows(data: &'a [f32], rows: usize, cols: usize, row_stride: usize) -> Self {
        View {
            data,
            rows,
            cols,
            row_stride,
            col_stride: 1,
        }
    }

    /// The transpose of `self` (no copy).
    pub fn t(self) -> Self {
        View {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
        }
    }

    fn check(&self) {
        if self.rows > 0 && self.cols > 0 {
            assert!(
                (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride
                    < self.data.len(),
                "matrix view out of bounds"
            );
        }
    }
}

/// `out[r, c] (+)= Σ_k a[r, k] · b[k, c]`, where `out` is row-major with `out_stride`. With
/// `accumulate` the product is added to what `out` holds; otherwise `out` is overwritten.
/// `threads > 1` splits the product over rayon's pool.
///
/// # Panics
/// If the shapes disagree or a view runs past its slice.
pub(crate) fn sgemm(
    a: View<'_>,
    b: View<'_>,
    out: &mut [f32],
    out_stride: usize,
    accumulate: bool,
    threads: usize,
) {
    a.check();
    b.check();
    assert_eq!(a.cols, b.rows, "inner dimensions differ");
    let (m, k, n) = (a.rows, a.cols, b.cols);
    if m == 0 || n == 0 {
        return;
    }
    assert!(
        n <= out_stride || m <= 1,
        "output stride shorter than a row"
    );
    assert!(
        (m - 1) * out_stride + n <= out.len(),
        "output out of bounds"
    );
    if k == 0 {
        if !accumulate {
            for r in 0..m {
                out[r * out_stride..r * out_stride + n].fill(0.0);
            }
        }
        return;
    }
    let parallelism = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the asserts above (and `View::check`) prove that every element gemm reads
    // (up to (rows-1)·row_stride + (cols-1)·col_stride of each input) and writes (up to
    // (m-1)·out_stride + n-1) lies inside its slice; the output is a unique borrow, so it
    // aliases neither input.
    #[allow(unsafe_code)]
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            out_stride as isize,
            accumulate,
            a.data.as_ptr(),
            a.col_stride as isize,
            a.row_stride as isize,
            b.data.as_ptr(),
            b.col_stride as isize,
            b.row_stride as isize,
            if accumulate { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strided_product_matches_the_naive_one() {
        let a: Vec<f32> = (0..5 * 7).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..4 * 9).map(|i| (i as f32 * 0.11).cos()).collect();
        // a: rows 0..3 of a 5x7 buffer, cols 2..6 (3 rows x 4 cols, stride 7)
        // b: 4 rows x 3 cols of a 4x9 buffer starting at col 5
        let av = View::rows(&a[2..], 3, 4, 7);
        let bv = View::rows(&b[5..], 4, 3, 9);
        let mut out = vec![1.0f32; 3 * 5];
        sgemm(av, bv, &mut out, 5, true, 1);
        for r in 0..3 {
            for c in 0..3 {
                let want: f32 = 1.0
                    + (0..4)
                        .map(|k| a[2 + r * 7 + k] * b[5 + k * 9 + c])
                        .sum::<f32>();
                assert!((out[r * 5 + c] - want).abs() < 1e-5);
            }
            assert!(
                (out[r * 5 + 3] - 1.0).abs() < f32::EPSILON,
                "columns past n untouched"
            );
        }
        // A transposed view: bᵀ (3 x 4) times aᵀ (4 x 3).
        let mut out2 = vec![0.0f32; 9];
        sgemm(bv.t(), av.t(), &mut out2, 3, false, 2);
        for r in 0..3 {
            for c in 0..3 {
                assert!((out2[r * 3 + c] - (out[c * 5 + r] - 1.0)).abs() < 1e-5);
            }
        }
    }
}
