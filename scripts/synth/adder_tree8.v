// Adder tree: sum of eight signed 16-bit products -> 19-bit sum (3 levels, each +1 bit).
// Inputs are packed: product i is pk[16*i +: 16]. Combinational.
module adder_tree8 (
    input  wire        [127:0] pk,
    output wire signed [18:0]  s
);
    wire signed [15:0] p [0:7];
    genvar i;
    generate
        for (i = 0; i < 8; i = i + 1) begin : unpack
            assign p[i] = pk[16*i +: 16];
        end
    endgenerate
    wire signed [16:0] l1_0 = p[0] + p[1];
    wire signed [16:0] l1_1 = p[2] + p[3];
    wire signed [16:0] l1_2 = p[4] + p[5];
    wire signed [16:0] l1_3 = p[6] + p[7];
    wire signed [17:0] l2_0 = l1_0 + l1_1;
    wire signed [17:0] l2_1 = l1_2 + l1_3;
    assign s = l2_0 + l2_1;
endmodule
