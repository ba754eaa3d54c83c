// DLIQ low-precision lane, multiply part: signed 8-bit activation x signed 4-bit integer code
// -> 12-bit product. The DLIQ lane computes (a * q) << k with a per-BLOCK shift k in 0..5,
// so in the real PE the shift is not per lane: the 12-bit products of the low lanes of a
// block are summed in a sub-tree and one shifter (dliq_shift) is shared after that sub-tree.
// Logically the same function as mult8x4; kept as its own component so the two can differ.
module dliq_mult (
    input  wire signed [7:0]  a,
    input  wire signed [3:0]  q,
    output wire signed [11:0] p
);
    assign p = a * q;
endmodule
