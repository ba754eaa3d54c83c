// generic_cells.v -- zero-delay Verilog models of the cells in generic.lib (same names,
// pins and functions), for simulating the gate-level netlists yosys writes. Not a PDK.
module BUF (input A, output Y);
  assign Y = A;
endmodule
module INV (input A, output Y);
  assign Y = ~A;
endmodule
module NAND2 (input A, input B, output Y);
  assign Y = ~(A&B);
endmodule
module NOR2 (input A, input B, output Y);
  assign Y = ~(A|B);
endmodule
module AND2 (input A, input B, output Y);
  assign Y = A&B;
endmodule
module OR2 (input A, input B, output Y);
  assign Y = A|B;
endmodule
module NAND3 (input A, input B, input C, output Y);
  assign Y = ~(A&B&C);
endmodule
module NOR3 (input A, input B, input C, output Y);
  assign Y = ~(A|B|C);
endmodule
module AOI21 (input A, input B, input C, output Y);
  assign Y = ~((A&B)|C);
endmodule
module OAI21 (input A, input B, input C, output Y);
  assign Y = ~((A|B)&C);
endmodule
module AOI22 (input A, input B, input C, input D, output Y);
  assign Y = ~((A&B)|(C&D));
endmodule
module OAI22 (input A, input B, input C, input D, output Y);
  assign Y = ~((A|B)&(C|D));
endmodule
module XOR2 (input A, input B, output Y);
  assign Y = A^B;
endmodule
module XNOR2 (input A, input B, output Y);
  assign Y = ~(A^B);
endmodule
module MUX2 (input A, input B, input S, output Y);
  assign Y = S?B:A;
endmodule
module DFF (input C, input D, output reg Q);
  always @(posedge C) Q <= D;
endmodule
