//! Matrices over GF(2⁸): the code's encoding matrix and the inverses that decode it
//! (SPEC.md F.3).
//!
//! Shard `i` is row `i` of the encoding matrix times the data shards. Its first `k`
//! rows are the identity, so the data shards are the input itself; the last `m` rows
//! make the parity. Any `k` rows are invertible, and their inverse times the `k`
//! shards those rows made gives back the data shards.

use coffer_gf256::field as gf256;

/// A `rows × cols` matrix, row by row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Matrix {
    cols: usize,
    cells: Vec<u8>,
}

impl Matrix {
    fn zero(rows: usize, cols: usize) -> Matrix {
        Matrix { cols, cells: vec![0; rows * cols] }
    }

    fn identity(n: usize) -> Matrix {
        let mut m = Matrix::zero(n, n);
        for i in 0..n {
            m.row_mut(i)[i] = 1;
        }
        m
    }

    /// The `rows × cols` Vandermonde matrix, `V[r][c] = r^c`.
    fn vandermonde(rows: usize, cols: usize) -> Matrix {
        let mut m = Matrix::zero(rows, cols);
        for r in 0..rows {
            for (c, cell) in m.row_mut(r).iter_mut().enumerate() {
                let r = u8::try_from(r).expect("at most 256 rows");
                *cell = gf256::pow(r, c);
            }
        }
        m
    }

    pub(super) fn rows(&self) -> usize {
        self.cells.len() / self.cols
    }

    pub(super) fn row(&self, r: usize) -> &[u8] {
        &self.cells[r * self.cols..(r + 1) * self.cols]
    }

    fn row_mut(&mut self, r: usize) -> &mut [u8] {
        &mut self.cells[r * self.cols..(r + 1) * self.cols]
    }

    /// The matrix of the given rows, in that order.
    pub(super) fn select_rows(&self, rows: &[usize]) -> Matrix {
        Matrix { cols: self.cols, cells: rows.iter().flat_map(|&r| self.row(r)).copied().collect() }
    }

    /// `self · other`.
    fn times(&self, other: &Matrix) -> Matrix {
        assert_eq!(self.cols, other.rows(), "matrix shapes do not multiply");
        let mut product = Matrix::zero(self.rows(), other.cols);
        for r in 0..self.rows() {
            for c in 0..other.cols {
                product.row_mut(r)[c] =
                    self.row(r).iter().enumerate().fold(0, |sum, (i, &a)| sum ^ gf256::mul(a, other.row(i)[c]));
            }
        }
        product
    }

    /// The inverse of a square matrix by Gauss–Jordan elimination; `None` if it is
    /// singular.
    pub(super) fn inverse(&self) -> Option<Matrix> {
        let n = self.rows();
        assert_eq!(n, self.cols, "only a square matrix has an inverse");
        let mut left = self.clone();
        let mut right = Matrix::identity(n);
        for col in 0..n {
            // A row at or below the diagonal with a non-zero entry in this column
            // becomes the pivot; with none, the columns so far are dependent.
            let pivot = (col..n).find(|&r| left.row(r)[col] != 0)?;
            left.swap_rows(col, pivot);
            right.swap_rows(col, pivot);
            let scale = gf256::inv(left.row(col)[col]);
            left.scale_row(col, scale);
            right.scale_row(col, scale);
            for r in (0..n).filter(|&r| r != col) {
                let factor = left.row(r)[col];
                if factor != 0 {
                    left.add_scaled_row(r, col, factor);
                    right.add_scaled_row(r, col, factor);
                }
            }
        }
        debug_assert_eq!(left, Matrix::identity(n));
        Some(right)
    }

    fn swap_rows(&mut self, a: usize, b: usize) {
        if a != b {
            for c in 0..self.cols {
                self.cells.swap(a * self.cols + c, b * self.cols + c);
            }
        }
    }

    fn scale_row(&mut self, r: usize, factor: u8) {
        for cell in self.row_mut(r) {
            *cell = gf256::mul(*cell, factor);
        }
    }

    /// Row `target` += `factor` · row `source` (in GF(2⁸), + is − : this also
    /// eliminates).
    fn add_scaled_row(&mut self, target: usize, source: usize, factor: u8) {
        for c in 0..self.cols {
            let add = gf256::mul(self.row(source)[c], factor);
            self.row_mut(target)[c] ^= add;
        }
    }
}

/// The `(data + parity) × data` encoding matrix `V · V_top⁻¹` (SPEC.md F.3), where `V`
/// is the `(data + parity) × data` Vandermonde matrix and `V_top` its first `data`
/// rows.
pub(super) fn encoding(data: usize, parity: usize) -> Matrix {
    let v = Matrix::vandermonde(data + parity, data);
    let top = v.select_rows(&(0..data).collect::<Vec<_>>());
    let top_inverse = top.inverse().expect("a square Vandermonde matrix on distinct points is invertible");
    v.times(&top_inverse)
}

/// The `data × data` matrix that turns shards `rows` (any `data` distinct shard
/// numbers) back into the data shards: the inverse of those rows of [`encoding`].
pub(super) fn decoding(data: usize, parity: usize, rows: &[usize]) -> Matrix {
    assert_eq!(rows.len(), data, "decoding takes exactly `data` shards");
    encoding(data, parity)
        .select_rows(rows)
        .inverse()
        .expect("any `data` rows of the encoding matrix are independent (the code is MDS)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Every way to choose `n` of `0..total`, in increasing order.
    fn subsets(total: usize, n: usize) -> Vec<Vec<usize>> {
        (0u32..1 << total)
            .filter(|bits| bits.count_ones() as usize == n)
            .map(|bits| (0..total).filter(|i| bits & (1 << i) != 0).collect())
            .collect()
    }

    #[test]
    fn encoding_is_systematic() {
        for data in 1..=8 {
            for parity in 1..=4 {
                let e = encoding(data, parity);
                assert_eq!(e.rows(), data + parity);
                assert_eq!(e.select_rows(&(0..data).collect::<Vec<_>>()), Matrix::identity(data));
            }
        }
    }

    #[test]
    fn parity_rows_of_four_plus_two() {
        // As reed-solomon-erasure 6 computes them: the matrix pinned where it can be read.
        let e = encoding(4, 2);
        assert_eq!(e.row(4), [0x1B, 0x1C, 0x12, 0x14]);
        assert_eq!(e.row(5), [0x1C, 0x1B, 0x14, 0x12]);
    }

    #[test]
    fn any_data_rows_decode() {
        for data in 1..=8 {
            for parity in 1..=4 {
                let e = encoding(data, parity);
                for rows in subsets(data + parity, data) {
                    let d = decoding(data, parity, &rows);
                    assert_eq!(d.times(&e.select_rows(&rows)), Matrix::identity(data), "{data}+{parity} {rows:?}");
                }
            }
        }
    }

    #[test]
    fn singular_has_no_inverse() {
        let m = Matrix { cols: 3, cells: vec![1, 2, 3, 4, 5, 6, 1 ^ 4, 2 ^ 5, 3 ^ 6] };
        assert_eq!(m.inverse(), None);
        assert_eq!(Matrix::zero(2, 2).inverse(), None);
    }

    proptest! {
        #[test]
        fn inverse_times_matrix_is_identity(n in 1usize..=8, cells in proptest::collection::vec(any::<u8>(), 64)) {
            let m = Matrix { cols: n, cells: cells[..n * n].to_vec() };
            if let Some(inverse) = m.inverse() {
                prop_assert_eq!(m.times(&inverse), Matrix::identity(n));
                prop_assert_eq!(inverse.times(&m), Matrix::identity(n));
            }
        }

        /// Lower triangular with 1s on the diagonal times upper triangular with no 0
        /// on it: always invertible, so `inverse` must find it.
        #[test]
        fn invertible_matrices_invert(
            n in 1usize..=8,
            below in proptest::collection::vec(any::<u8>(), 64),
            above in proptest::collection::vec(any::<u8>(), 64),
            diagonal in proptest::collection::vec(1u8..=255, 8),
        ) {
            let mut lower = Matrix::identity(n);
            let mut upper = Matrix::zero(n, n);
            for r in 0..n {
                upper.row_mut(r)[r] = diagonal[r];
                for c in 0..n {
                    if c < r {
                        lower.row_mut(r)[c] = below[r * 8 + c];
                    } else if c > r {
                        upper.row_mut(r)[c] = above[r * 8 + c];
                    }
                }
            }
            let m = lower.times(&upper);
            let inverse = m.inverse().expect("invertible by construction");
            prop_assert_eq!(m.times(&inverse), Matrix::identity(n));
            prop_assert_eq!(inverse.times(&m), Matrix::identity(n));
        }
    }
}
