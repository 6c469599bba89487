package recommend

import (
	"errors"
	"fmt"
	"sync"

	"gonum.org/v1/gonum/blas/blas32"
	"gonum.org/v1/gonum/mat"
)

// EASE is Steck's "Embarrassingly Shallow Autoencoder" (WWW 2019): an item
// × item weight matrix B with a zero diagonal, in closed form
// B = I − P·diag(1/diag(P)) with P = (XᵀX + λI)⁻¹. A player's score for
// item i is Σ_j x_j B[j][i] over the player's items j, so new interactions
// change the answer at once, without retraining. B is dense (n² float32),
// which is why EASE is used up to a few thousand items.
type EASE struct {
	N int
	B []float32 // row j: what item j contributes to every item
}

// Gram returns XᵀX (items × items, dense, row-major), accumulated over
// players by workers each holding its own matrix.
func Gram(x *Matrix, workers int) []float64 {
	n := x.Cols
	workers = max(1, workers)
	parts := make([][]float64, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			g := make([]float64, n*n)
			for u := w; u < x.Rows; u += workers {
				items, vals := x.Row(u)
				for a, i := range items {
					row := g[int(i)*n:]
					va := float64(vals[a])
					for b := a; b < len(items); b++ {
						row[items[b]] += va * float64(vals[b])
					}
				}
			}
			parts[w] = g
		})
	}
	wg.Wait()
	g := parts[0]
	for _, p := range parts[1:] {
		for i, v := range p {
			g[i] += v
		}
	}
	// Items within a row are ascending, so only the upper triangle is
	// filled; mirror it.
	for i := range n {
		for j := i + 1; j < n; j++ {
			g[j*n+i] = g[i*n+j]
		}
	}
	return g
}

// FitEASE solves EASE for the Gram matrix g (n × n, unchanged) and
// regularisation lambda, with one Cholesky factorisation and inverse.
func FitEASE(g []float64, n int, lambda float64) (*EASE, error) {
	if n == 0 {
		return &EASE{}, nil
	}
	if lambda <= 0 {
		return nil, errors.New("ease: lambda must be positive")
	}
	a := make([]float64, n*n)
	copy(a, g)
	for i := range n {
		a[i*n+i] += lambda
	}
	var chol mat.Cholesky
	if ok := chol.Factorize(mat.NewSymDense(n, a)); !ok {
		return nil, fmt.Errorf("ease: XᵀX + %gI is not positive definite", lambda)
	}
	var p mat.SymDense
	if err := chol.InverseTo(&p); err != nil {
		return nil, fmt.Errorf("ease: inverse: %w", err)
	}
	raw := p.RawSymmetric()
	at := func(i, j int) float64 {
		if i > j {
			i, j = j, i
		}
		return raw.Data[i*raw.Stride+j]
	}
	e := &EASE{N: n, B: make([]float32, n*n)}
	for j := range n {
		row := e.B[j*n : (j+1)*n]
		for i := range n {
			if i != j {
				// B[j][i] = −P[j][i] / P[i][i]
				row[i] = float32(-at(j, i) / at(i, i))
			}
		}
	}
	return e, nil
}

func (e *EASE) scores(q query, out []float32) {
	n := e.N
	for a, j := range q.items {
		v := q.vals[a]
		axpy(v, e.B[int(j)*n:(int(j)+1)*n], out)
	}
}

// axpy adds a·x to y (blas32, which uses SIMD on amd64).
func axpy(a float32, x, y []float32) {
	blas32.Axpy(a, blas32.Vector{N: len(x), Inc: 1, Data: x}, blas32.Vector{N: len(x), Inc: 1, Data: y})
}
