// The implicit-GEMM gather shared by the forward pass (cols) and the weight gradient (colsᵀ):
// cols[tap, pixel] with tap = (channel, ki, kj) and pixel = (image, oy, ox), read from x (n, c, h,
// w), which the including shader declares; 0 in the padding.
fn gather_cols(tap: u32, pixel: u32) -> f32 {
    let plane = G_OH * G_OW;
    let img = pixel / plane;
    let pix = pixel % plane;
    let taps = G_K * G_K;
    let ch = tap / taps;
    let t = tap % taps;
    let uy = (pix / G_OW) * G_S + t / G_K;
    let ux = (pix % G_OW) * G_S + t % G_K;
    if uy < G_P || ux < G_P || uy - G_P >= G_H || ux - G_P >= G_W {
        return 0.0;
    }
    return x[((img * G_C + ch) * G_H + uy - G_P) * G_W + ux - G_P];
}
